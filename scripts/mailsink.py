#!/usr/bin/env python3
"""A local SMTP server for tests and development (aiosmtpd, from PyPI).

Every message it accepts is written, whole, as one .eml file in MAILDIR (written under a
temporary name and renamed, so a reader never sees half a message). The envelope recipients
come first as `X-Sink-To:` header lines, then the message as the client sent it.

    mailsink.py HOST PORT MAILDIR
"""
import asyncio
import os
import sys
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir

    async def handle_DATA(self, server, session, envelope):
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.eml"
        tmp = os.path.join(self.maildir, "." + name + ".tmp")
        head = "".join(f"X-Sink-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos).encode()
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.maildir, name))
        return "250 Message accepted for delivery"


def main():
    host, port, maildir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(maildir, exist_ok=True)
    controller = Controller(Sink(maildir), hostname=host, port=port)
    controller.start()
    print(f"mail sink on {host}:{port}, writing to {maildir}", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
