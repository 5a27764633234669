#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""List the TPM 2.0 commands in a client-to-TPM byte stream (tpm-proxy.py's CAPTURE.tx).

    tpm-commands.py [--summary | --count | --has-cc HEX] CAPTURE.tx

The stream is parsed sequentially: every command starts with a 10-byte header, tag (0x8001
TPM_ST_NO_SESSIONS or 0x8002 TPM_ST_SESSIONS), a 4-byte big-endian size of the whole command and
a 4-byte command code; the next command starts SIZE bytes later. Default output: one line per
command, "INDEX OFFSET 0xCODE NAME SIZE". --summary: "COUNT NAME" per command code, in order of
first use, then "total N". --count: the number of commands. --has-cc HEX: exit 0 when a command
with that code is present, 1 when not. Exit 2 when the stream is not a sequence of TPM commands
(a bad tag, a size below 10 or past the end): the capture is then not what the caller thinks.
"""

import struct
import sys

# TPM 2.0 Library, Part 2, table "TPM_CC" (the commands in use on this class of TPM).
CC_NAMES = {
    0x11F: "NV_UndefineSpaceSpecial", 0x120: "EvictControl", 0x121: "HierarchyControl",
    0x122: "NV_UndefineSpace", 0x124: "ChangeEPS", 0x125: "ChangePPS", 0x126: "Clear",
    0x127: "ClearControl", 0x128: "ClockSet", 0x129: "HierarchyChangeAuth",
    0x12A: "NV_DefineSpace", 0x12B: "PCR_Allocate", 0x12C: "PCR_SetAuthPolicy",
    0x12D: "PP_Commands", 0x12E: "SetPrimaryPolicy", 0x12F: "FieldUpgradeStart",
    0x130: "ClockRateAdjust", 0x131: "CreatePrimary", 0x132: "NV_GlobalWriteLock",
    0x133: "GetCommandAuditDigest", 0x134: "NV_Increment", 0x135: "NV_SetBits",
    0x136: "NV_Extend", 0x137: "NV_Write", 0x138: "NV_WriteLock",
    0x139: "DictionaryAttackLockReset", 0x13A: "DictionaryAttackParameters",
    0x13B: "NV_ChangeAuth", 0x13C: "PCR_Event", 0x13D: "PCR_Reset", 0x13E: "SequenceComplete",
    0x13F: "SetAlgorithmSet", 0x140: "SetCommandCodeAuditStatus", 0x141: "FieldUpgradeData",
    0x142: "IncrementalSelfTest", 0x143: "SelfTest", 0x144: "Startup", 0x145: "Shutdown",
    0x146: "StirRandom", 0x147: "ActivateCredential", 0x148: "Certify", 0x149: "PolicyNV",
    0x14A: "CertifyCreation", 0x14B: "Duplicate", 0x14C: "GetTime",
    0x14D: "GetSessionAuditDigest", 0x14E: "NV_Read", 0x14F: "NV_ReadLock",
    0x150: "ObjectChangeAuth", 0x151: "PolicySecret", 0x152: "Rewrap", 0x153: "Create",
    0x154: "ECDH_ZGen", 0x155: "HMAC", 0x156: "Import", 0x157: "Load", 0x158: "Quote",
    0x159: "RSA_Decrypt", 0x15B: "HMAC_Start", 0x15C: "SequenceUpdate", 0x15D: "Sign",
    0x15E: "Unseal", 0x160: "PolicySigned", 0x161: "ContextLoad", 0x162: "ContextSave",
    0x163: "ECDH_KeyGen", 0x164: "EncryptDecrypt", 0x165: "FlushContext",
    0x167: "LoadExternal", 0x168: "MakeCredential", 0x169: "NV_ReadPublic",
    0x16A: "PolicyAuthorize", 0x16B: "PolicyAuthValue", 0x16C: "PolicyCommandCode",
    0x16D: "PolicyCounterTimer", 0x16E: "PolicyCpHash", 0x16F: "PolicyLocality",
    0x170: "PolicyNameHash", 0x171: "PolicyOR", 0x172: "PolicyTicket", 0x173: "ReadPublic",
    0x174: "RSA_Encrypt", 0x176: "StartAuthSession", 0x177: "VerifySignature",
    0x178: "ECC_Parameters", 0x179: "FirmwareRead", 0x17A: "GetCapability",
    0x17B: "GetRandom", 0x17C: "GetTestResult", 0x17D: "Hash", 0x17E: "PCR_Read",
    0x17F: "PolicyPCR", 0x180: "PolicyRestart", 0x181: "ReadClock", 0x182: "PCR_Extend",
    0x183: "PCR_SetAuthValue", 0x184: "NV_Certify", 0x185: "EventSequenceComplete",
    0x186: "HashSequenceStart", 0x187: "PolicyPhysicalPresence",
    0x188: "PolicyDuplicationSelect", 0x189: "PolicyGetDigest", 0x18A: "TestParms",
    0x18B: "Commit", 0x18C: "PolicyPassword", 0x18D: "ZGen_2Phase", 0x18E: "EC_Ephemeral",
    0x18F: "PolicyNvWritten", 0x190: "PolicyTemplate", 0x191: "CreateLoaded",
    0x192: "PolicyAuthorizeNV", 0x193: "EncryptDecrypt2", 0x194: "AC_GetCapability",
    0x195: "AC_Send", 0x196: "Policy_AC_SendSelect", 0x197: "CertifyX509",
    0x198: "ACT_SetTimeout",
}


def parse(data):
    """Yields (offset, code, size) for each command; raises ValueError on a malformed stream."""
    off = 0
    while off < len(data):
        if len(data) - off < 10:
            raise ValueError(f"offset {off}: {len(data) - off} trailing bytes, not a command header")
        tag, size, code = struct.unpack_from(">HII", data, off)
        if tag not in (0x8001, 0x8002):
            raise ValueError(f"offset {off}: tag 0x{tag:04x} is not 0x8001/0x8002")
        if size < 10 or off + size > len(data):
            raise ValueError(f"offset {off}: command size {size} does not fit the stream")
        yield off, code, size
        off += size


def name(code):
    return CC_NAMES.get(code, f"CC_0x{code:08x}")


def main():
    args = sys.argv[1:]
    mode, want = "list", None
    if args and args[0] in ("--summary", "--count"):
        mode = args.pop(0)[2:]
    elif args and args[0] == "--has-cc" and len(args) > 1:
        mode, want = "has", int(args[1], 16)
        args = args[2:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], "rb") as f:
        data = f.read()
    try:
        cmds = list(parse(data))
    except ValueError as e:
        print(f"tpm-commands: {args[0]}: {e}", file=sys.stderr)
        return 2
    if mode == "count":
        print(len(cmds))
    elif mode == "has":
        return 0 if any(c == want for _, c, _ in cmds) else 1
    elif mode == "summary":
        counts = {}
        for _, c, _ in cmds:
            counts[c] = counts.get(c, 0) + 1
        for c, n in counts.items():
            print(f"{n:4d} {name(c)}")
        print(f"total {len(cmds)}")
    else:
        for i, (off, c, size) in enumerate(cmds):
            print(f"{i} {off} 0x{c:08x} {name(c)} {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
