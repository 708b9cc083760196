# SPDX-License-Identifier: Apache-2.0
# Latency profile for tests/latencyp11: the bench's long fleet (500 rows). It is
# yubikey-class.profile (see there for the sources) without the per-slot cost of
# C_GetSlotList: a desk's reader count stays the same over a run, while SoftHSM2,
# which stands in for the cards, keeps every token of the run in its own slot (500
# slots at the end), which no desk has. bench.py runs it at LATENCYP11_SCALE 0.1
# (a fast token) so 500 rows take minutes.
seed = 19
jitter = 0.2

default = 1ms
C_Initialize = 150ms
C_Finalize = 10ms
C_GetSlotList = 10ms
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
C_GetAttributeValue = 0.5ms
C_SignInit = 0.5ms
C_Sign = 80ms
C_Sign/CKM_ECDSA = 70ms
C_Sign/CKM_RSA_PKCS = 150ms
C_Sign/CKM_SHA256_RSA_PKCS = 150ms
C_Sign/CKM_RSA_PKCS_PSS = 150ms
C_Decrypt = 150ms
C_GenerateRandom = 5ms
