// SPDX-License-Identifier: Apache-2.0
// An attribute template that owns the bytes behind every pValue.
#pragma once

#include "tokenprov/p11/pkcs11.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tokenprov::p11 {

using Bytes = std::vector<std::uint8_t>;

class Attributes {
public:
  Attributes() = default;
  Attributes(const Attributes&) = delete; // pValue pointers point into storage_
  Attributes& operator=(const Attributes&) = delete;
  Attributes(Attributes&&) = default;
  Attributes& operator=(Attributes&&) = default;

  Attributes& add_bool(CK_ATTRIBUTE_TYPE type, bool value);
  Attributes& add_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  Attributes& add_bytes(CK_ATTRIBUTE_TYPE type, std::span<const std::uint8_t> value);
  Attributes& add_string(CK_ATTRIBUTE_TYPE type, std::string_view value);
  Attributes& add_class(CK_OBJECT_CLASS cls) { return add_ulong(CKA_CLASS, cls); }

  // Marks the attribute added last as a convenience a module may refuse
  // (CKA_CERTIFICATE_CATEGORY on opencryptoki): Session::create writes the
  // object without the optional ones when the module answers
  // CKR_ATTRIBUTE_TYPE_INVALID. Never for an attribute that carries key policy.
  Attributes& optional();
  bool has_optional() const;
  // A copy without the optional attributes.
  Attributes required_only() const;

  CK_ATTRIBUTE* data() { return attrs_.empty() ? nullptr : attrs_.data(); }
  CK_ULONG size() const { return static_cast<CK_ULONG>(attrs_.size()); }
  bool empty() const { return attrs_.empty(); }

private:
  CK_ATTRIBUTE* push(CK_ATTRIBUTE_TYPE type, const void* p, std::size_t n);
  std::vector<CK_ATTRIBUTE> attrs_;
  std::vector<bool> optional_; // one per attribute
  std::deque<Bytes> storage_; // deque: growing it never moves existing buffers
};

} // namespace tokenprov::p11
