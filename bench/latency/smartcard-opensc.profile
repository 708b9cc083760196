# SPDX-License-Identifier: Apache-2.0
# Latency profile for tests/latencyp11 (format: tests/latencyp11/latencyp11.c):
# a contact smart card in a USB CCID reader, driven by OpenSC's PKCS#11 module
# (PKCS#15 file system on the card, T=1, no file cache).
#
# Sources, and what is an estimate:
# - C_Initialize/C_GetSlotList/C_OpenSession: OpenSC reads the card's file
#   system when it binds a card: "four second delay to load the opensc PKCS11
#   module" with a MyEID card (github.com/OpenSC/OpenSC/issues/2444), many READ
#   BINARY at C_Initialize with a Nitrokey HSM (OpenSC/OpenSC/issues/2208),
#   certificates browsed at every start, 8 s with caching
#   (OpenSC/OpenSC/issues/2629). We take 400 ms (a small file system): estimate.
# - C_GenerateKeyPair: "Smartcards can generate RSA keys of 2048bit in about
#   9 secs" (github.com/trustcrypto/OnlyKey-Firmware/issues/66); the key
#   generation APDU of a SmartCard-HSM ran 1.7 s before an error in
#   OpenSC/OpenSC/issues/2947. RSA-2048 8 s with +-25 % jitter (prime search
#   varies widely); EC P-256 700 ms: estimate.
# - C_Login (VERIFY), C_Sign (a private-key operation on an 8/16-bit card
#   CPU with a crypto co-processor), object writes (UPDATE BINARY in ~250-byte
#   APDUs, ~20 ms each, plus the PKCS#15 directory file rewritten): estimates
#   in the range keycard measurements report for signing and decryption
#   (anarc.at/blog/2017-10-26-comparison-cryptographic-keycards/).
# - Calls that OpenSC answers from memory (mechanism list, attributes of
#   objects it parsed at bind time, find) cost a little CPU: estimate.
seed = 19
jitter = 0.25

default = 2ms
C_Initialize = 400ms
C_Finalize = 20ms
C_GetSlotList = 25ms
C_GetSlotList.per_item = 15ms     # a reader status per slot (SCardGetStatusChange)
C_GetSlotInfo = 1ms
C_GetTokenInfo = 8ms
C_GetMechanismList = 0.2ms
C_GetMechanismInfo = 0.1ms
C_InitToken = 2s                  # erase + create the PKCS#15 structure: estimate
C_InitPIN = 400ms
C_SetPIN = 300ms
C_OpenSession = 40ms
C_CloseSession = 1ms
C_Login = 150ms                   # VERIFY; SO and user alike
C_Logout = 20ms
C_GenerateKeyPair = 700ms
C_GenerateKeyPair/CKM_EC_KEY_PAIR_GEN = 700ms
C_GenerateKeyPair/CKM_RSA_PKCS_KEY_PAIR_GEN = 8s
C_CreateObject = 120ms
C_CreateObject.per_byte = 80us    # UPDATE BINARY, ~20 ms per 250 bytes
C_SetAttributeValue = 100ms
C_DestroyObject = 150ms
C_FindObjectsInit = 1ms
C_FindObjects = 1ms
C_FindObjects.per_item = 0.5ms
C_FindObjectsFinal = 0.2ms
C_GetAttributeValue = 1ms
C_SignInit = 1ms
C_Sign = 200ms
C_Sign/CKM_ECDSA = 180ms
C_Sign/CKM_RSA_PKCS = 350ms
C_Sign/CKM_SHA256_RSA_PKCS = 350ms
C_Sign/CKM_RSA_PKCS_PSS = 350ms
C_Sign/CKM_SHA256_RSA_PKCS_PSS = 350ms
C_Decrypt = 350ms
C_GenerateRandom = 10ms
