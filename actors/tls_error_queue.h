// A fix for CAF 0.17's OpenSSL module, which never empties OpenSSL's per-thread error queue when a
// handshake fails (its only drain is inside log statements that Debian's build compiles out).
// The stale error then makes SSL_get_error() report SSL_ERROR_SSL for the next connection's
// ordinary "want read" on the same multiplexer thread, and CAF closes that healthy link: one
// peer sending garbage to a worker port would cut the router's established TLS link.
// The definitions in tls_error_queue.cpp interpose OpenSSL's I/O entry points in this binary and
// empty the queue before each call, as OpenSSL requires of its callers (SSL_get_error(3)).
#pragma once

namespace troupe {

// True when the interposed SSL_read/SSL_write/SSL_accept/SSL_connect are the ones the process
// uses (the binary exports them ahead of libssl). Linking this in is what installs them.
bool tls_error_queue_guard_active();

}  // namespace troupe
