"""An SMTP server for the tests: aiosmtpd on 127.0.0.1:PORT that writes every message it
accepts to DIR/<n>.eml (the login, envelope sender and recipients in the first lines). It
offers AUTH PLAIN/LOGIN on the plain connection and accepts only USER with PASSWORD (the
last two arguments), so a test sees the credential's login work. Run by tests/src/smtp.rs;
stops when killed."""

import asyncio
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, f"{self.count}.eml")
        with open(path + ".tmp", "wb") as out:
            login = session.auth_data.login.decode() if session.auth_data else ""
            out.write(f"X-Auth-Login: {login}\r\n".encode())
            out.write(f"X-Envelope-From: {envelope.mail_from}\r\n".encode())
            out.write(f"X-Envelope-To: {','.join(envelope.rcpt_tos)}\r\n".encode())
            out.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


class Logins:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def main():
    port, directory, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    controller = Controller(
        Sink(directory),
        hostname="127.0.0.1",
        port=port,
        authenticator=Logins(user, password),
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
