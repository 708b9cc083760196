// SPDX-License-Identifier: Apache-2.0
// What is on a token, as the contract's `list --json` shows it.
#pragma once

#include "tokenprov/p11/module.hpp"
#include "tokenprov/secret.hpp"

#include <nlohmann/json.hpp>

#include <memory>
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

struct Inventory {
  std::vector<TokenEntry> tokens;
  std::vector<p11::UnreadableSlot> unreadable; // slots whose token the module cannot read
  bool logged_in = false;
};

// What `list` shows: the token SELECTOR names (every token when empty), with
// their objects. A PIN goes only to a token the user selected: with no
// selector it is presented only when exactly one token needs a login (more:
// Error(Usage) listing them to pick from); a token that needs no login
// (CKF_LOGIN_REQUIRED unset) is never logged into, its public objects are
// listed without one.
Inventory take_inventory(const std::shared_ptr<p11::Module>& module, const std::string& selector, const Secret* pin);

nlohmann::json to_json(const ObjectEntry& o);
nlohmann::json to_json(const TokenEntry& t);
nlohmann::json to_json(const Inventory& inv);

} // namespace tokenprov
