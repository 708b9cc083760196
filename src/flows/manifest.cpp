// SPDX-License-Identifier: Apache-2.0
// Reading and checking fleet manifests (CSV, libcsv).
#include "tokenprov/fleet.hpp"

#include "tokenprov/csr.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/uri.hpp"

#include <csv.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

namespace tokenprov {

namespace {

struct CsvParse {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> cur;
};

void on_field(void* s, size_t n, void* data) {
  // CSV_EMPTY_IS_NULL hands an empty unquoted field over as (NULL, 0).
  auto* p = static_cast<CsvParse*>(data);
  if (s) p->cur.emplace_back(static_cast<char*>(s), n);
  else p->cur.emplace_back();
}
void on_record(int, void* data) {
  auto* p = static_cast<CsvParse*>(data);
  p->records.push_back(std::move(p->cur));
  p->cur.clear();
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  auto e = s.find_last_not_of(" \t\r");
  s.erase(e == std::string::npos ? 0 : e + 1);
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

} // namespace

// Identifies a row in the state file. A token named by label or serial
// appears once per manifest, so token + subject is unique; blank rows are
// told apart by subject, user and the label they give the token.
std::string manifest_row_key(const ManifestRow& r) {
  std::string k = r.token + "\x1f" + r.subject;
  if (r.token == "blank") k += "\x1f" + r.user + "\x1f" + r.label;
  return k;
}

namespace {
// The CSV records of DATA (a UTF-8 BOM skipped); Error(BadInput) naming the
// row and line where it stops being CSV.
std::vector<std::vector<std::string>> csv_records(const std::string& path, const std::vector<std::uint8_t>& data) {
  std::size_t start = 0;
  if (data.size() >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) start = 3; // UTF-8 BOM (spreadsheets)
  struct csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0)
    fail(ExitCode::Internal, "Cannot start the CSV parser.");
  CsvParse p;
  std::size_t len = data.size() - start;
  std::size_t n = csv_parse(&parser, data.data() + start, len, on_field, on_record, &p);
  bool parsed = n == len;
  bool ok = parsed && csv_fini(&parser, on_field, on_record, &p) == 0;
  int err = csv_error(&parser);
  csv_free(&parser);
  if (!ok) {
    // The record being read when the parser stopped: records[0] is the header.
    std::size_t rec = p.records.size();
    std::string where = rec == 0 ? "the header row" : "row " + std::to_string(rec);
    if (parsed) {
      where += " (a quoted field is never closed)";
    } else {
      std::size_t line = 1 + static_cast<std::size_t>(std::count(data.begin() + static_cast<std::ptrdiff_t>(start),
                                                                  data.begin() + static_cast<std::ptrdiff_t>(start + n), '\n'));
      where += " (line " + std::to_string(line) + ")";
    }
    fail(ExitCode::BadInput, "The manifest '" + path + "' is not valid CSV at " + where + ": " + csv_strerror(err) + ".",
         "Check the quoting of that line: a field with a comma or a quote is written in double quotes, a quote inside it doubled.");
  }
  return std::move(p.records);
}

// The column names of the header row RECORD, lower case: token and subject
// present, none empty, none twice.
std::vector<std::string> manifest_header(const std::string& path, const std::vector<std::string>& record) {
  std::vector<std::string> header;
  for (auto& h : record) header.push_back(lower(trim(h)));
  for (const char* req : {"token", "subject"})
    if (std::find(header.begin(), header.end(), req) == header.end())
      fail(ExitCode::BadInput, "The manifest '" + path + "', header row, has no '" + req + "' column.",
           "The header needs at least: token,subject (optional: san,user,label).");
  std::set<std::string> seen_header;
  for (std::size_t c = 0; c < header.size(); ++c) {
    if (header[c].empty())
      fail(ExitCode::BadInput, "The manifest '" + path + "', header row, has an empty column name (column " +
                                   std::to_string(c + 1) + ").");
    if (!seen_header.insert(header[c]).second)
      fail(ExitCode::BadInput, "The manifest '" + path + "', header row, names the column '" + header[c] + "' twice.");
  }
  return header;
}

// Row I, the record REC under HEADER, its fields trimmed; san split at ';'.
ManifestRow manifest_row(const std::vector<std::string>& header, const std::vector<std::string>& rec, std::size_t i) {
  ManifestRow r;
  r.row = i;
  for (std::size_t c = 0; c < header.size(); ++c) {
    std::string v = trim(rec[c]);
    const std::string& h = header[c];
    if (h == "token") r.token = v;
    else if (h == "subject") r.subject = v;
    else if (h == "user") r.user = v;
    else if (h == "label") r.label = v;
    else if (h == "san") {
      std::stringstream ss(v);
      std::string part;
      while (std::getline(ss, part, ';'))
        if (!trim(part).empty()) r.sans.push_back(trim(part));
    } else r.extra[h] = v;
  }
  return r;
}

// The row's own fields checked: token, subject, SANs, label (WHERE names the row).
void check_row(const ManifestRow& r, const std::string& where) {
  if (r.token.empty()) fail(ExitCode::BadInput, where + ", has no token.", "Use a label, serial:HEX, or blank.");
  if (r.token.rfind("serial:", 0) == 0 && r.token.size() == 7)
    fail(ExitCode::BadInput, where + ", has an empty serial in 'serial:'.");
  if (r.subject.empty()) fail(ExitCode::BadInput, where + ", has no subject.");
  std::string scheme = r.token.substr(0, 7);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme == "pkcs11:") {
    try {
      (void)parse_selector_uri(r.token); // a pin-value is refused here, before the token reaches any record
    } catch (const Error& e) {
      fail(ExitCode::BadInput, where + ", column 'token': " + e.what(), e.hint());
    }
  }
  try {
    ossl::parse_dn(r.subject);
  } catch (const Error& e) {
    fail(ExitCode::BadInput, where + ", column 'subject': " + e.what(), "Write the DN as /CN=Alice/O=Example.");
  }
  try {
    for (auto& s : r.sans) check_san(s);
  } catch (const Error& e) {
    fail(ExitCode::BadInput, where + ", column 'san': " + e.what(),
         "Write SANs as TYPE:VALUE separated by ';' (email, dns, uri, upn).");
  }
  if (r.label.size() > 32) fail(ExitCode::BadInput, where + ", column 'label': longer than 32 bytes.");
}
} // namespace

std::vector<ManifestRow> read_manifest(const std::string& path) {
  auto data = read_input_file(path, input::manifest);
  auto records = csv_records(path, data);
  if (records.empty()) fail(ExitCode::BadInput, "The manifest '" + path + "' is empty; it needs a header row.");
  std::vector<std::string> header = manifest_header(path, records[0]);

  std::vector<ManifestRow> rows;
  std::map<std::string, std::size_t> tokens, keys, labels;
  for (std::size_t i = 1; i < records.size(); ++i) {
    auto& rec = records[i];
    if (rec.size() == 1 && trim(rec[0]).empty()) continue; // blank line
    std::string where = "The manifest '" + path + "', row " + std::to_string(i);
    if (rec.size() != header.size())
      fail(ExitCode::BadInput, where + ", has " + std::to_string(rec.size()) + " fields; the header has " +
                                   std::to_string(header.size()) + ".",
           "Quote a field that holds a comma.");
    ManifestRow r = manifest_row(header, rec, i);
    check_row(r, where);
    if (r.token != "blank") {
      if (auto [it, fresh] = tokens.emplace(r.token, i); !fresh)
        fail(ExitCode::BadInput, where + ", names the token '" + r.token + "' a second time (row " +
                                     std::to_string(it->second) + ").",
             "Each token may appear once in a manifest.");
    }
    if (!r.label.empty()) {
      if (auto [it, fresh] = labels.emplace(r.label, i); !fresh)
        fail(ExitCode::BadInput, where + ", gives the label '" + r.label + "' a second time (row " +
                                     std::to_string(it->second) + ").",
             "Each token the fleet initializes needs its own label.");
    }
    if (auto [it, fresh] = keys.emplace(manifest_row_key(r), i); !fresh)
      fail(ExitCode::BadInput, where + ", repeats row " + std::to_string(it->second) + ".",
           "Two blank rows with the same subject and user need different labels (column 'label').");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) fail(ExitCode::BadInput, "The manifest '" + path + "' has no rows.");
  return rows;
}

} // namespace tokenprov
