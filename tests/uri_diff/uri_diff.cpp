// SPDX-License-Identifier: Apache-2.0
// Differential test: tokenprov's RFC 7512 parser against p11-kit's
// (p11_kit_uri_parse / p11_kit_uri_format from libp11-kit), the reference.
//
//   uri_diff [--rfc] [--lines FILE]... [FILE]...
//
// --rfc feeds RFC 7512 section 3's examples (both parsers must accept them);
// --lines FILE one URI per line (e.g. every URI `tokenprov list --json`
// printed); FILE one input per file (the URI fuzzer's corpus).
//
// For each input both parsers run. When both accept, what each attribute
// means must agree: the token, slot and library fields (p11-kit's CK_*_INFO
// with its space padding), slot-id, object, id, type, the query attributes,
// and whether a path attribute is unknown (p11-kit's "unrecognized" flag,
// our vendor path attributes). Each side's format() is then parsed by the
// other and must keep that meaning. When only one accepts, the input must
// fall in a difference docs/uri.md writes down with the RFC's words;
// anything else fails the test.
#include "tokenprov/error.hpp"
#include "tokenprov/uri.hpp"

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using tokenprov::Pkcs11Uri;
using Meaning = std::map<std::string, std::string>;

namespace {

const char* const kRfcExamples[] = {
    "pkcs11:",
    "pkcs11:object=my-pubkey;type=public",
    "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
    "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;"
    "object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
    "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
    "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
    "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
    "pkcs11:slot-description=Sun%20Metaslot",
    "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
    "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
    "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
    "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
    "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
    "?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
};

std::string hex(const void* p, std::size_t n) {
  static const char d[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    auto c = static_cast<const unsigned char*>(p)[i];
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// A fixed-size PKCS#11 field as p11-kit stores it: all zero is "not in the
// URI", otherwise the value padded with spaces.
std::optional<std::string> field(const unsigned char* p, std::size_t n) {
  bool zero = true;
  for (std::size_t i = 0; i < n; ++i)
    if (p[i]) zero = false;
  if (zero) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(p), n);
  auto end = s.find_last_not_of(' ');
  return end == std::string::npos ? std::string() : s.substr(0, end + 1);
}

const char* type_name(CK_OBJECT_CLASS c) {
  switch (c) {
  case CKO_PUBLIC_KEY: return "public";
  case CKO_PRIVATE_KEY: return "private";
  case CKO_CERTIFICATE: return "cert";
  case CKO_SECRET_KEY: return "secret-key";
  case CKO_DATA: return "data";
  }
  return "?";
}

Meaning theirs_meaning(P11KitUri* u, const std::vector<std::string>& vendor_query_names) {
  Meaning m;
  auto put = [&](const char* k, std::optional<std::string> v) {
    if (v) m[k] = *v;
  };
  CK_TOKEN_INFO* t = p11_kit_uri_get_token_info(u);
  put("token", field(t->label, sizeof t->label));
  put("manufacturer", field(t->manufacturerID, sizeof t->manufacturerID));
  put("model", field(t->model, sizeof t->model));
  put("serial", field(t->serialNumber, sizeof t->serialNumber));
  CK_INFO* l = p11_kit_uri_get_module_info(u);
  put("library-manufacturer", field(l->manufacturerID, sizeof l->manufacturerID));
  put("library-description", field(l->libraryDescription, sizeof l->libraryDescription));
  if (!(l->libraryVersion.major == 0xff && l->libraryVersion.minor == 0xff))
    m["library-version"] = std::to_string(l->libraryVersion.major) + "." + std::to_string(l->libraryVersion.minor);
  CK_SLOT_INFO* s = p11_kit_uri_get_slot_info(u);
  put("slot-description", field(s->slotDescription, sizeof s->slotDescription));
  put("slot-manufacturer", field(s->manufacturerID, sizeof s->manufacturerID));
  if (p11_kit_uri_get_slot_id(u) != static_cast<CK_SLOT_ID>(-1)) m["slot-id"] = std::to_string(p11_kit_uri_get_slot_id(u));
  if (CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(u, CKA_LABEL))
    m["object"] = std::string(static_cast<const char*>(a->pValue), a->ulValueLen);
  if (CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(u, CKA_ID)) m["id"] = hex(a->pValue, a->ulValueLen);
  if (CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(u, CKA_CLASS); a && a->ulValueLen == sizeof(CK_OBJECT_CLASS))
    m["type"] = type_name(*static_cast<CK_OBJECT_CLASS*>(a->pValue));
  if (const char* v = p11_kit_uri_get_pin_source(u)) m["pin-source"] = v;
  if (const char* v = p11_kit_uri_get_pin_value(u)) m["pin-value"] = v;
  if (const char* v = p11_kit_uri_get_module_name(u)) m["module-name"] = v;
  if (const char* v = p11_kit_uri_get_module_path(u)) m["module-path"] = v;
  for (const auto& n : vendor_query_names)
    if (const char* v = p11_kit_uri_get_vendor_query(u, n.c_str())) m["?" + n] = v;
  if (p11_kit_uri_any_unrecognized(u)) m["(unrecognized)"] = "1";
  return m;
}

// The size of the CK_*_INFO field each struct attribute lands in.
std::size_t field_size(const std::string& name) {
  if (name == "model" || name == "serial") return 16;
  if (name == "slot-description") return 64;
  if (name == "token" || name == "manufacturer" || name == "library-manufacturer" || name == "library-description" ||
      name == "slot-manufacturer")
    return 32;
  return 0;
}

Meaning ours_meaning(const Pkcs11Uri& u) {
  Meaning m;
  bool unrecognized = !u.vendor_path_attributes().empty();
  for (const auto& [name, value] : u.path) {
    if (!Pkcs11Uri::is_standard_path_attribute(name)) continue;
    std::string v = value;
    if (std::size_t n = field_size(name)) {
      // A value longer than the PKCS#11 field matches no token, slot or
      // library: p11-kit flags it unrecognized, tokenprov compares it and
      // never finds it equal. Trailing spaces are the field's padding.
      if (v.size() > n) {
        unrecognized = true;
        continue;
      }
      auto end = v.find_last_not_of(' ');
      v = end == std::string::npos ? std::string() : v.substr(0, end + 1);
    }
    if (name == "id") v = hex(value.data(), value.size());
    if (name == "slot-id") v = std::to_string(std::strtoull(value.c_str(), nullptr, 10));
    if (name == "library-version") {
      auto dot = value.find('.');
      unsigned long major = std::strtoul(value.substr(0, dot).c_str(), nullptr, 10);
      unsigned long minor = dot == std::string::npos ? 0 : std::strtoul(value.substr(dot + 1).c_str(), nullptr, 10);
      v = std::to_string(major) + "." + std::to_string(minor);
    }
    m[name] = v;
  }
  for (const auto& [name, value] : u.query) {
    std::string key = Pkcs11Uri::is_standard_query_attribute(name) ? name : "?" + name;
    m.emplace(key, value); // the first of repeated vendor attributes
  }
  if (unrecognized) m["(unrecognized)"] = "1";
  return m;
}

std::vector<std::string> vendor_query_names(const Pkcs11Uri& u) {
  std::vector<std::string> out;
  for (const auto& [name, value] : u.query)
    if (!Pkcs11Uri::is_standard_query_attribute(name)) out.push_back(name);
  return out;
}

std::string show(const Meaning& m) {
  std::ostringstream o;
  for (const auto& [k, v] : m) o << "  " << k << " = '" << v << "'\n";
  return o.str();
}

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else out += "\\x" + hex(&c, 1);
  }
  return out;
}

struct Counts {
  int inputs = 0, both = 0, ours_only = 0, theirs_only = 0, neither = 0, failures = 0;
};

// Why tokenprov accepts what p11-kit 0.24 refuses; each is written down in
// docs/uri.md. Empty: an unexplained difference.
std::string ours_only_reason(const Pkcs11Uri& u) {
  for (const auto& [name, value] : u.query)
    if (!Pkcs11Uri::is_standard_query_attribute(name))
      for (char c : name)
        if ((c >= 'A' && c <= 'Z')) return "vendor query name with upper-case letters (RFC: ALPHA)";
  if (auto v = u.path.find("library-version"); v != u.path.end()) {
    auto dot = v->second.find('.');
    auto major = std::strtoull(v->second.substr(0, dot).c_str(), nullptr, 10);
    auto minor = dot == std::string::npos ? 0 : std::strtoull(v->second.substr(dot + 1).c_str(), nullptr, 10);
    if (major >= 255 || minor >= 255 || v->second.size() > 9) return "library-version number of 255 or more";
  }
  if (auto v = u.path.find("slot-id"); v != u.path.end() && v->second.size() > 9) return "slot-id beyond p11-kit's int";
  return {};
}

void run(const std::string& input, const std::string& where, bool must_accept, Counts& c) {
  ++c.inputs;
  std::optional<Pkcs11Uri> ours;
  std::string our_error;
  try {
    ours = Pkcs11Uri::parse(input);
  } catch (const tokenprov::Error& e) {
    our_error = e.what();
  }
  // p11-kit stops at a NUL; an input with one is ours alone to judge.
  bool has_nul = input.find('\0') != std::string::npos;
  P11KitUri* theirs = p11_kit_uri_new();
  int rv = has_nul ? P11_KIT_URI_BAD_ENCODING : p11_kit_uri_parse(input.c_str(), P11_KIT_URI_FOR_ANY, theirs);
  bool they_accept = rv == P11_KIT_URI_OK;
  auto report = [&](const std::string& what) {
    ++c.failures;
    std::cout << "DIFFERENCE (" << where << ") " << printable(input) << "\n  " << what << "\n";
  };
  if (must_accept && (!ours || !they_accept))
    report(std::string("an RFC 7512 example refused: ") + (ours ? "" : "tokenprov: " + our_error + " ") +
           (they_accept ? "" : std::string("p11-kit: ") + p11_kit_uri_message(rv)));
  if (ours && they_accept) {
    ++c.both;
    Meaning a = ours_meaning(*ours), b = theirs_meaning(theirs, vendor_query_names(*ours));
    if (a != b) report("the attributes mean different things\n tokenprov:\n" + show(a) + " p11-kit:\n" + show(b));
    // Each side's canonical form, read by the other.
    char* formatted = nullptr;
    if (p11_kit_uri_format(theirs, P11_KIT_URI_FOR_ANY, &formatted) == P11_KIT_URI_OK && formatted) {
      try {
        // p11-kit's format() leaves out what it flagged unrecognized, so its
        // output is compared with p11-kit's own reading of it.
        P11KitUri* reread = p11_kit_uri_new();
        Meaning expected;
        if (p11_kit_uri_parse(formatted, P11_KIT_URI_FOR_ANY, reread) == P11_KIT_URI_OK)
          expected = theirs_meaning(reread, vendor_query_names(*ours));
        p11_kit_uri_free(reread);
        Meaning again = ours_meaning(Pkcs11Uri::parse(formatted));
        if (again != expected)
          report(std::string("p11-kit's format() ") + formatted + " reads differently in tokenprov:\n" + show(again) +
                 " p11-kit:\n" + show(expected));
      } catch (const tokenprov::Error& e) {
        report(std::string("p11-kit's format() ") + formatted + " is refused by tokenprov: " + e.what());
      }
      std::free(formatted);
    }
    P11KitUri* back = p11_kit_uri_new();
    std::string mine = ours->format();
    if (p11_kit_uri_parse(mine.c_str(), P11_KIT_URI_FOR_ANY, back) != P11_KIT_URI_OK)
      report("tokenprov's format() " + mine + " is refused by p11-kit");
    else if (theirs_meaning(back, vendor_query_names(*ours)) != a)
      report("tokenprov's format() " + mine + " reads differently in p11-kit:\n" +
             show(theirs_meaning(back, vendor_query_names(*ours))));
    p11_kit_uri_free(back);
  } else if (ours) {
    ++c.ours_only;
    std::string why = has_nul ? "a NUL byte (p11-kit reads C strings)" : ours_only_reason(*ours);
    if (why.empty()) report(std::string("tokenprov accepts, p11-kit refuses (") + p11_kit_uri_message(rv) + ")");
    else std::cout << "known difference (" << where << "): " << why << "\n";
  } else if (they_accept) {
    // tokenprov is stricter where RFC 7512's ABNF is (characters it requires
    // percent-encoded, empty attributes, a path attribute in the query or the
    // reverse, type values, duplicates): refusing is the RFC's side.
    ++c.theirs_only;
  } else {
    ++c.neither;
  }
  p11_kit_uri_free(theirs);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::cerr << "cannot read " << path << "\n";
    std::exit(2);
  }
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

} // namespace

int main(int argc, char** argv) {
  Counts c;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--rfc") {
      for (const char* u : kRfcExamples) run(u, "RFC 7512 section 3", true, c);
    } else if (arg == "--lines" && i + 1 < argc) {
      std::istringstream in(read_all(argv[++i]));
      std::string line;
      while (std::getline(in, line))
        if (!line.empty()) run(line, argv[i], false, c);
    } else {
      run(read_all(arg), arg, false, c);
    }
  }
  std::cout << c.inputs << " inputs: " << c.both << " accepted by both, " << c.ours_only << " by tokenprov only, "
            << c.theirs_only << " by p11-kit only, " << c.neither << " by neither; " << c.failures
            << " unexplained differences\n";
  return c.failures || c.inputs == 0 ? 1 : 0;
}
