// SPDX-License-Identifier: Apache-2.0
// What a PKCS#11 URI selects beyond its own attributes: the module its query
// names (module-path, module-name), the PIN source (pin-source), the token
// by library, slot and token attributes (RFC 7512 sections 2.3 to 2.5).
#pragma once

#include "tokenprov/p11/module.hpp"
#include "tokenprov/uri.hpp"

#include <optional>
#include <string>

namespace tokenprov {

// The module the URI's query names: module-path (an absolute path to the
// module file) or module-name (resolved through p11-kit's registry); both
// present must name the same file. std::nullopt when it names none.
// Error(Usage) for a relative or directory module-path, a module-name with
// a '/', or the two naming different files; Error(Token) for a name p11-kit
// does not know.
std::optional<std::string> uri_module(const Pkcs11Uri& uri);

// The module a command uses: --module (CLI_MODULE), else the module the
// SELECTOR URI names, else the profile's, $TOKENPROV_MODULE, p11-kit's proxy
// (resolve_module_path). A URI module that is not the --module file is
// Error(Usage).
std::string resolve_module_for(const std::string& cli_module, const std::string& profile_module,
                               const std::string& selector);

// The token selector of a command given --token TOKEN and --key KEY: when KEY
// is a URI naming its token, library, slot, module or PIN source, those join
// TOKEN (a URI, serial:HEX or label) in one URI, so a key URI alone selects
// module, token and key. Both naming the same attribute differently: a path
// attribute is Error(Token) (no token is both), a query one Error(Usage).
std::string token_selector_with_key(const std::string& token, const std::string& key);

// The user PIN source: CLI_SOURCE (--pin-source), else the pin-source of the
// SELECTOR URI mapped by secret_source_from_pin_source(); both given and
// different is Error(Usage). Empty when neither gives one.
std::string pin_source_for(const std::string& cli_source, const std::string& selector);

// RFC 7512 pin-source onto tokenprov's secret sources (secret.hpp):
// file:/PATH, file:///PATH, file://localhost/PATH and a path are file:PATH;
// env:VAR, fd:N, file:PATH and prompt are taken as --pin-source takes them.
// Refused with Error(Usage): "|command" (tokenprov runs no program a URI
// names), a file URI on another host, any other scheme (https:, pkcs11:, ...).
std::string secret_source_from_pin_source(const std::string& value);

// True when URI selects TOKEN of MODULE: its library attributes match
// C_GetInfo, its slot attributes C_GetSlotInfo of the token's slot, its token
// attributes the token. Library and slot are read only when the URI names them.
bool uri_selects_token(const Pkcs11Uri& uri, const p11::Module& module, const p11::TokenInfo& token);

} // namespace tokenprov
