// SPDX-License-Identifier: Apache-2.0
// renew()'s exchange over CMP (key update) and the archived-label test.
#include "tokenprov/renew.hpp"

#include "tokenprov/cmp.hpp"

#include <regex>

namespace tokenprov {

bool is_archived_label(const std::string& label) {
  static const std::regex archived(R"(.* \(archived [0-9]{4}-[0-9]{2}-[0-9]{2}\)$)");
  return std::regex_match(label, archived);
}

RenewExchange cmp_kur_exchange(const cmp::Options& opts) {
  // kur signed with the current key and certificate. The client's store step
  // keeps the answer for renew(), which checks it against the key and writes
  // it; certConf goes out when the store step returns, so before that write
  // (docs/user-guide.md, "renew").
  return [opts](p11::Session& s, const KeyRef& current, X509* current_cert, const KeyRef&, X509_REQ*) {
    std::vector<ossl::X509Ptr> answer;
    cmp::kur(opts, s, current, current_cert, [&answer](const cmp::Issued& iss) {
      answer.push_back(ossl::dup(iss.cert.get()));
      for (auto& c : iss.chain)
        answer.push_back(ossl::dup(c.get()));
    });
    return answer;
  };
}

} // namespace tokenprov
