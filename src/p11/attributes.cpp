// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/attributes.hpp"

#include <cstring>

namespace tokenprov::p11 {

CK_ATTRIBUTE* Attributes::push(CK_ATTRIBUTE_TYPE type, const void* p, std::size_t n) {
  auto& buf = storage_.emplace_back(n);
  if (n) std::memcpy(buf.data(), p, n);
  attrs_.push_back(CK_ATTRIBUTE{type, n ? buf.data() : nullptr, static_cast<CK_ULONG>(n)});
  optional_.push_back(false);
  return &attrs_.back();
}

Attributes& Attributes::optional() {
  if (!optional_.empty()) optional_.back() = true;
  return *this;
}

bool Attributes::has_optional() const {
  for (bool o : optional_)
    if (o) return true;
  return false;
}

Attributes Attributes::required_only() const {
  Attributes out;
  for (std::size_t i = 0; i < attrs_.size(); ++i)
    if (!optional_[i]) out.push(attrs_[i].type, attrs_[i].pValue, attrs_[i].ulValueLen);
  return out;
}

Attributes& Attributes::add_bool(CK_ATTRIBUTE_TYPE type, bool value) {
  CK_BBOOL b = value ? CK_TRUE : CK_FALSE;
  push(type, &b, sizeof b);
  return *this;
}

Attributes& Attributes::add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  push(type, &value, sizeof value);
  return *this;
}

Attributes& Attributes::add_bytes(CK_ATTRIBUTE_TYPE type, std::span<const std::uint8_t> value) {
  push(type, value.data(), value.size());
  return *this;
}

Attributes& Attributes::add_string(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  push(type, value.data(), value.size());
  return *this;
}

} // namespace tokenprov::p11
