"""Upload a file with tuspy, the independent tus client (crates/reelforge-testkit/src/tus.rs).

    python tuspy_upload.py CREATION_URL TOKEN FILE CHUNK_BYTES METADATA_JSON

Every chunk carries `Upload-Checksum: sha1 …`. Prints the upload's URL.
"""

import json
import sys

from tusclient import client


def main() -> None:
    url, token, path, chunk, metadata = sys.argv[1:]
    tus = client.TusClient(url, headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(
        path,
        chunk_size=int(chunk),
        metadata=json.loads(metadata),
        upload_checksum=True,
    )
    uploader.upload()
    print(uploader.url)


if __name__ == "__main__":
    main()
