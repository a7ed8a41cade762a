"""The bench's tus client: one kept-alive HTTP/1.1 connection, a file sent in fixed-size
PATCH requests read straight from disk (Python standard library only).

    python3 tus_client.py BASE_URL TOKEN FILE CHUNK_BYTES

Prints 201 when the upload finished (the exit status says the same).
"""

import base64
import http.client
import os
import sys
from urllib.parse import urlsplit


def main() -> int:
    base, token, path, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    size = os.path.getsize(path)
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    common = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in (("filename", "big.bin"), ("profile", "thumbnail")))
    conn.request("POST", "/api/uploads", headers={**common, "Upload-Length": str(size),
                                                  "Upload-Metadata": meta})
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        print(f"create: {r.status}", file=sys.stderr)
        return 1
    location = r.getheader("Location")
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            body = f.read(chunk)
            conn.request("PATCH", location, body=body, headers={
                **common, "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream"})
            r = conn.getresponse()
            r.read()
            if r.status != 204:
                print(f"PATCH at {offset}: {r.status}", file=sys.stderr)
                return 1
            offset = int(r.getheader("Upload-Offset"))
    print(201)
    return 0


if __name__ == "__main__":
    sys.exit(main())
