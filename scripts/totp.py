#!/usr/bin/env python3
"""The TOTP code (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) of a base32
secret, as an authenticator app shows it: the one code the benches and
scripts/contract compute to log in.

    scripts/totp.py SECRET            prints the current code
    import totp; totp.totp(SECRET, step_offset=0)
"""
import base64, hashlib, hmac, struct, sys, time


def totp(secret, step_offset=0):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    counter = int(time.time()) // 30 + step_offset
    d = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    o = d[-1] & 15
    return "%06d" % ((struct.unpack(">I", d[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)


if __name__ == "__main__":
    print(totp(sys.argv[1]))
