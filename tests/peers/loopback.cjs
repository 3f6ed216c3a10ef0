// Loaded with `node --require` in front of Portkey's gateway for make bench.
// Its start-server.js listens on every interface and has no flag for the
// address; every server here binds to loopback, so this pins each
// `listen(port)` (and `listen({port})`) to 127.0.0.1.
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "object" && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number" || typeof args[0] === "string") {
    // listen(port[, host][, backlog][, callback]): drop a given host, put ours.
    const rest = typeof args[1] === "string" ? args.slice(2) : args.slice(1);
    args = [args[0], "127.0.0.1", ...rest];
  }
  return listen.apply(this, args);
};
