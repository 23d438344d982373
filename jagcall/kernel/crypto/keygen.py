"""Make new keys without a configured project (first deployment, image builds).

    python -m jagcall.kernel.crypto.keygen master        # a Tink AES256_GCM keyset (JSON) for the master key
    python -m jagcall.kernel.crypto.keygen blind-index   # a blind-index key, "v1:<base64 of 32 random bytes>"

Print to a file you protect (chmod 600); never commit the output.
"""

from __future__ import annotations

import base64
import secrets
import sys


def master_keyset_json() -> str:
    import tink
    from tink import aead, secret_key_access

    aead.register()
    handle = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)
    return tink.json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)


def blind_index_key(version: str = "v1") -> str:
    return f"{version}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["master"]:
        print(master_keyset_json())
        return 0
    if argv[:1] == ["blind-index"]:
        print(blind_index_key(argv[1] if len(argv) > 1 else "v1"))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
