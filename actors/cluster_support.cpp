// Helpers the cluster's actors share: time, secrets, type announcements.

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <caf/all.hpp>

#include "cluster_protocol.hpp"
#include "ft/error.hpp"

namespace ft::detail {

bool node_shared::lease_valid() const noexcept {
  return lease_until_ns.load() > steady_ns();
}

int64_t steady_ns() noexcept {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch())
    .count();
}

namespace {

std::string hex(const unsigned char* data, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  result.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    result += digits[data[i] >> 4];
    result += digits[data[i] & 0x0f];
  }
  return result;
}

} // namespace

std::string hmac_hex(const std::string& secret, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  auto res = HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                  reinterpret_cast<const unsigned char*>(data.data()),
                  data.size(), out, &len);
  if (res == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed"); // broken OpenSSL
  return hex(out, len);
}

std::string make_nonce() {
  unsigned char buf[16];
  if (RAND_bytes(buf, sizeof(buf)) != 1) {
    std::random_device rd;
    for (auto& b : buf)
      b = static_cast<unsigned char>(rd());
  }
  return hex(buf, sizeof(buf));
}

void add_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<member>("ft.member");
  cfg.add_message_type<entity_record>("ft.entity_record");
  cfg.add_message_type<peer_info>("ft.peer_info");
  cfg.add_message_type<hello_msg>("ft.hello_msg");
  cfg.add_message_type<hello_reply>("ft.hello_reply");
  cfg.add_message_type<placement_request>("ft.placement_request");
  cfg.add_error_category(error_category, render_ft_error);
}

} // namespace ft::detail
