// SPDX-License-Identifier: Apache-2.0
// list: the tokens, and with a PIN source every object on them.
#include "commands.hpp"

#include "tokenprov/inventory.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"
#include "tokenprov/utf8.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace tokenprov::cli {

namespace {
std::string human(const Inventory& inv) {
  std::ostringstream o;
  bool logged_in = inv.logged_in;
  if (inv.tokens.empty()) o << "No token found.\n";
  for (auto& u : inv.unreadable)
    o << "Slot " << u.slot_id << ": the module cannot read its token (" << p11::rv_name(u.rv)
      << "); it may be damaged. Other tokens are listed.\n";
  for (auto& t : inv.tokens) {
    o << "Token '" << t.info.label << "'  serial " << t.info.serial << "  (" << t.info.manufacturer << " "
      << t.info.model << ")" << (t.info.initialized() ? "" : "  [not initialized]") << "\n";
    o << "  " << t.uri << "\n";
    if (t.objects.empty()) {
      if (!logged_in && t.info.login_required()) o << "  (objects are listed with --pin-source)\n";
      continue;
    }
    std::size_t lw = 5, iw = 2;
    for (auto& ob : t.objects) {
      lw = std::max(lw, ob.label.size());
      iw = std::max(iw, ob.id.size() * 2);
    }
    lw = std::min<std::size_t>(lw, 40) + 2;
    iw += 2;
    o << "  " << std::left << std::setw(12) << "CLASS" << std::setw(static_cast<int>(iw)) << "ID"
      << std::setw(static_cast<int>(lw)) << "LABEL" << "DETAILS\n";
    for (auto& ob : t.objects) {
      std::string details;
      if (!ob.key_type.empty()) {
        details = ob.key_type + (ob.bits ? "-" + std::to_string(*ob.bits) : "") +
                  (ob.curve.empty() ? "" : " " + ob.curve);
        if (ob.cls == "private-key")
          details += std::string(ob.extractable ? " exportable" : " non-exportable") + (ob.sensitive ? " sensitive" : " NOT-SENSITIVE");
      }
      if (ob.cls == "certificate")
        details = (ob.authority ? "CA " : "") + ob.subject + " (until " + ob.not_after + ")";
      o << "  " << std::left << std::setw(12) << ob.cls.substr(0, 11) << std::setw(static_cast<int>(iw)) << to_hex(ob.id)
        << std::setw(static_cast<int>(lw)) << ob.label << details << "\n";
    }
  }
  return o.str();
}
} // namespace

int run_list(const Global& g) {
  auto module = p11::Module::load(module_path(g));
  Secret pin;
  bool login = !pin_source(g).empty(); // --pin-source, or the --token URI's pin-source
  if (login) pin = user_pin(g);
  auto inv = take_inventory(module, g.token, login ? &pin : nullptr);
  if (g.json) {
    print_json(to_json(inv));
    return 0;
  }
  std::cout << escape_invalid_utf8(human(inv)); // foreign labels: \xNN
  return 0;
}

Command setup_list(CLI::App& app, Global& g) {
  auto* cmd = app.add_subcommand("list", "list tokens, and with a PIN source every object on them");
  return {cmd, [&g] { return run_list(g); }};
}

} // namespace tokenprov::cli
