// A small blocking HTTP/1.1 + WebSocket client over POSIX sockets for the listener tests: raw
// bytes in and out (so tests can send slow or malformed requests), every wait bounded by poll().
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>

namespace troupe::test {

struct http_reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
};

class conn {
 public:
  explicit conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) close();
  }
  ~conn() { close(); }
  conn(const conn&) = delete;
  conn& operator=(const conn&) = delete;

  bool ok() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until `pred(buffer)` holds, EOF or the timeout; returns false on EOF/timeout first.
  template <class Pred>
  bool read_until(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred(buf_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char tmp[8192];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        eof_ = true;
        return pred(buf_);
      }
      buf_.append(tmp, static_cast<size_t>(n));
    }
    return true;
  }

  // True when the server closes the connection within the timeout.
  bool closed_within(std::chrono::milliseconds timeout) {
    read_until([](const std::string&) { return false; }, timeout);
    return eof_;
  }

  // A response head up to its blank line (an interim `100 Continue`, say); nullopt on timeout.
  std::optional<std::string> read_head(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    if (!read_until([](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, timeout)) {
      return std::nullopt;
    }
    const size_t end = buf_.find("\r\n\r\n") + 4;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end);
    return head;
  }

  // One HTTP response (Content-Length or chunked body); nullopt on timeout or early EOF.
  std::optional<http_reply> read_reply(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    if (!read_until([](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, timeout)) {
      return std::nullopt;
    }
    const size_t head_end = buf_.find("\r\n\r\n");
    http_reply r;
    std::string head = buf_.substr(0, head_end);
    buf_.erase(0, head_end + 4);
    r.status = std::atoi(head.substr(9, 3).c_str());
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = next;
    }
    if (r.headers.count("content-length")) {
      const size_t len = std::stoul(r.headers["content-length"]);
      if (!read_until([len](const std::string& b) { return b.size() >= len; }, timeout)) return std::nullopt;
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    } else if (r.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        if (!read_until([](const std::string& b) { return b.find("\r\n") != std::string::npos; }, timeout)) {
          return std::nullopt;
        }
        const size_t eol = buf_.find("\r\n");
        const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        if (!read_until([&](const std::string& b) { return b.size() >= eol + 2 + size + 2; }, timeout)) {
          return std::nullopt;
        }
        r.body += buf_.substr(eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;
      }
    } else {
      read_until([](const std::string&) { return false; }, timeout);  // until close
      r.body = buf_;
      buf_.clear();
    }
    return r;
  }

  // -- WebSocket (client side) ------------------------------------------------------------------
  bool ws_handshake(const std::string& extra_headers = {}) {
    send(ws_upgrade(extra_headers));
    return ws_read_handshake();
  }

  // The 101 (true) or another status (false) that answers an upgrade request sent already.
  bool ws_read_handshake() {
    if (!read_until([](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; },
                    std::chrono::milliseconds(5000))) {
      return false;
    }
    const bool upgraded = buf_.compare(0, 12, "HTTP/1.1 101") == 0;
    buf_.erase(0, buf_.find("\r\n\r\n") + 4);
    return upgraded;
  }

  static std::string ws_upgrade(const std::string& extra_headers = {}) {
    return "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           extra_headers + "\r\n";
  }

  bool ws_send(const std::string& text) { return send(ws_frame(text)); }

  // A masked text frame, as a client sends it.
  static std::string ws_frame(const std::string& text) {
    std::string frame;
    frame += static_cast<char>(0x81);  // FIN + text
    const uint64_t n = text.size();
    if (n < 126) {
      frame += static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      frame += static_cast<char>(0x80 | 126);
      frame += static_cast<char>(n >> 8);
      frame += static_cast<char>(n & 0xff);
    } else {
      frame += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i) frame += static_cast<char>((n >> (8 * i)) & 0xff);
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame.append(reinterpret_cast<const char*>(mask), 4);
    for (size_t i = 0; i < text.size(); ++i) frame += static_cast<char>(text[i] ^ mask[i % 4]);
    return frame;
  }

  // The next text message; nullopt on timeout, close frame or EOF.
  std::optional<std::string> ws_recv(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    for (;;) {
      if (!read_until([](const std::string& b) { return b.size() >= 2; }, timeout)) return std::nullopt;
      const auto b0 = static_cast<unsigned char>(buf_[0]);
      const auto b1 = static_cast<unsigned char>(buf_[1]);
      size_t header = 2;
      uint64_t len = b1 & 0x7f;
      if (len == 126) header = 4;
      if (len == 127) header = 10;
      if (!read_until([header](const std::string& b) { return b.size() >= header; }, timeout)) return std::nullopt;
      if (len == 126) len = (static_cast<unsigned char>(buf_[2]) << 8) | static_cast<unsigned char>(buf_[3]);
      if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(buf_[2 + i]);
      }
      if (!read_until([&](const std::string& b) { return b.size() >= header + len; }, timeout)) return std::nullopt;
      std::string payload = buf_.substr(header, len);
      buf_.erase(0, header + len);
      const int opcode = b0 & 0x0f;
      if (opcode == 1) return payload;
      if (opcode == 8) return std::nullopt;
      // ping/pong/continuation: skip
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

inline std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = {}) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

inline std::string get(const std::string& path, const std::string& extra_headers = {}) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

}  // namespace troupe::test
