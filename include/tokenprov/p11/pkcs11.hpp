// SPDX-License-Identifier: Apache-2.0
// The PKCS#11 header, from p11-kit (the Debian package libp11-kit-dev).
#pragma once
#include <p11-kit/pkcs11.h>
