# SPDX-License-Identifier: Apache-2.0
# Latency profile for tests/latencyp11 (format: tests/latencyp11/latencyp11.c):
# a YubiKey-class USB token (PIV applet, CCID, a fast secure element), through
# its PKCS#11 module (ykcs11 or OpenSC's PIV driver).
#
# Sources, and what is an estimate:
# - Key generation: PIV GENERATE ASYMMETRIC KEY PAIR (INS 47) is one APDU
#   (docs.yubico.com/yesdk/users-manual/application-piv/apdu/generate-pair.html);
#   RSA-2048 on such tokens takes seconds, EC P-256 well under one; RSA 4 s
#   with +-30 % jitter, EC 250 ms: estimate.
# - C_OpenSession: "openSession() takes up to 4 seconds using
#   Yubikey/libykcs11" (github.com/LudovicRousseau/PyKCS11/issues/102): the
#   module reads the PIV objects (certificates) there. We take 150 ms for a
#   token with few objects: estimate.
# - PIV has no token initialization: C_InitToken stands for the reset and the
#   management-key/PIN setup a desk does (several APDUs): estimate.
# - Signing (GENERAL AUTHENTICATE), VERIFY, PUT DATA of a certificate
#   (chained APDUs): estimates, faster than a smart card's, in the range of
#   keycard measurements (anarc.at/blog/2017-10-26-comparison-cryptographic-keycards/).
seed = 19
jitter = 0.2

default = 1ms
C_Initialize = 150ms
C_Finalize = 10ms
C_GetSlotList = 10ms
C_GetSlotList.per_item = 5ms
C_GetTokenInfo = 5ms
C_GetMechanismList = 0.2ms
C_GetMechanismInfo = 0.1ms
C_InitToken = 600ms
C_InitPIN = 120ms
C_SetPIN = 120ms
C_OpenSession = 150ms
C_CloseSession = 1ms
C_Login = 60ms
C_Logout = 10ms
C_GenerateKeyPair = 250ms
C_GenerateKeyPair/CKM_EC_KEY_PAIR_GEN = 250ms
C_GenerateKeyPair/CKM_RSA_PKCS_KEY_PAIR_GEN = 4s
C_CreateObject = 60ms
C_CreateObject.per_byte = 30us
C_SetAttributeValue = 50ms
C_DestroyObject = 60ms
C_FindObjectsInit = 0.5ms
C_FindObjects = 0.5ms
C_FindObjects.per_item = 0.2ms
C_GetAttributeValue = 0.5ms
C_SignInit = 0.5ms
C_Sign = 80ms
C_Sign/CKM_ECDSA = 70ms
C_Sign/CKM_RSA_PKCS = 150ms
C_Sign/CKM_SHA256_RSA_PKCS = 150ms
C_Sign/CKM_RSA_PKCS_PSS = 150ms
C_Decrypt = 150ms
C_GenerateRandom = 5ms
