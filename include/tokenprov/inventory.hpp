// What is on a token, as the contract's `list --json` shows it.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace tokenprov {

struct ObjectEntry {
  std::string cls; // private-key, public-key, certificate, secret-key, data
  std::string label;
  std::string id; // raw bytes
  std::string uri;
  // keys
  std::string key_type; // rsa, ec, ed25519
  std::optional<int> bits;
  std::string curve; // P-256, P-384, Ed25519
  bool extractable = false, sensitive = false, never_extractable = false, always_sensitive = false, local = false;
  // certificates
  std::string subject, issuer, serial, not_before, not_after;
  bool authority = false;
};

struct TokenEntry {
  p11::TokenInfo info;
  std::string uri;
  std::vector<ObjectEntry> objects;
};

std::vector<ObjectEntry> list_objects(const p11::Session& s, const p11::TokenInfo& token);

nlohmann::json to_json(const ObjectEntry& o);
nlohmann::json to_json(const TokenEntry& t);

} // namespace tokenprov
