"""The front end's ceiling: a bare Falcon app under waitress that only reads and decodes the body.

    python bench/ceiling_app.py PORT THREADS
"""

from __future__ import annotations

import sys

import falcon
import msgspec
import waitress

from common.records import record_type

_decoder = msgspec.json.Decoder(list[record_type()])


class Decode:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        records = _decoder.decode(req.bounded_stream.read())
        resp.media = {"accepted": len(records)}


def main() -> None:
    port, threads = int(sys.argv[1]), int(sys.argv[2])
    app = falcon.App()
    app.add_route("/write", Decode())
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, max_request_body_size=64 * 2**20,
                   _quiet=True)


if __name__ == "__main__":
    main()
