"""`campus-edge init` (issue 8, point 1): the dialogue through a real terminal and a pipe in both languages, the
flags alone, and what is written: a configuration the loader accepts, a private TLS key that matches its request,
and nothing overwritten without --force."""

from __future__ import annotations

import datetime
import os
import pty
import re
import select
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.base.errors import ConfigError
from gateway.base.i18n import set_language, tr
from gateway.base.keys import new_keypair
from gateway.cli.init.answers import Invalid, SchoolPeriod, SiteAnswers, check_id, check_school_hours, check_urls
from gateway.cli.init.site import SiteLayout, write_site
from gateway.cli.init.template import wrap
from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent
BROKER = "mqtts://broker.platform.example:8883"


def init_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "init", *args]


def run_init(*args: str, stdin: str = "", lang: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": lang, "LC_ALL": "", "LC_MESSAGES": ""}
    return subprocess.run(
        init_argv(*args), input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False
    )


def flags(directory: Path, *extra: str) -> list[str]:
    return [
        "--dir", str(directory), "--non-interactive", "--site-id", "demo-school", "--site-name", "Demo School",
        "--gateway-id", "gw-east-gate", "--broker", BROKER, *extra,
    ]  # fmt: skip


class Terminal:
    """`campus-edge init` on a pseudo-terminal, read and typed into as an installer at a laptop would."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = b""
        self.pos = 0

    @property
    def screen(self) -> str:
        return self.raw.decode(errors="replace")

    def expect(self, text: str, timeout_s: float = 30.0) -> str:
        """Wait until `text` appears after what was read before; return what came up to it."""
        deadline = time.monotonic() + timeout_s
        while text not in self.screen[self.pos :]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"{text!r} did not appear; the screen:\n{self.screen}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the process has ended and closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"{text!r} did not appear before the end; the screen:\n{self.screen}")
            self.raw += chunk
        end = self.screen.index(text, self.pos) + len(text)
        seen, self.pos = self.screen[self.pos : end], end
        return seen

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self) -> int:
        """Read what is left of the output; the exit code."""
        deadline = time.monotonic() + 30
        while select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the process has ended
                break
            if not chunk:
                break
            self.raw += chunk
        return self.proc.wait(timeout=30)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a test that failed half-way: the dialogue is still waiting
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_init_dialogue_on_a_terminal_asks_again_and_writes_a_site(tmp_path: Path, lang: str) -> None:
    """On a terminal, in English (--lang) or Chinese (from LANG): wrong answers are asked again with the reason;
    the password is not echoed; the written site loads and holds the answers."""
    site_dir = tmp_path / "etc"
    env = {**os.environ, "LC_ALL": "", "LC_MESSAGES": ""}
    if lang == "en":
        argv, env["LANG"] = init_argv("--dir", str(site_dir), "--lang", "en"), "zh_CN.UTF-8"
    else:
        argv, env["LANG"] = init_argv("--dir", str(site_dir)), "zh_CN.UTF-8"

    def t(msgid: str, **fields: object) -> str:
        return tr(msgid, lang, **fields)

    with Terminal(argv, env) as term:
        _dialogue(term, t, site_dir)
    assert term.proc.returncode == 0
    assert "s3cret-Pw!" not in term.screen
    if lang == "zh-CN":  # the catalogue's words, not the English ids
        assert "“Demo School” 不能作为 id" in term.screen
        assert "已写入:" in term.screen
    _check_dialogue_site(site_dir, lang)


def _dialogue(term: Terminal, t: Callable[..., str], site_dir: Path) -> None:
    term.expect(t("Site id (e.g. no-1-middle-school)") + ": ")
    term.type("Demo School")
    reason = t(
        "“{value}” cannot be an id: use 1 to 64 lowercase letters, digits, - or _, starting with a letter or a digit "
        "(e.g. no-1-middle-school)",
        value="Demo School",
    )
    term.expect(reason)
    term.expect(t("Site id (e.g. no-1-middle-school)") + ": ")
    term.type("demo-school")
    term.expect(t("Site name (e.g. No. 1 Middle School, east campus)"))
    term.type("第一中学东校区")
    term.expect(t("Gateway id, unique within the site") + " [gw-1]: ")
    term.type("")
    term.expect(t("Broker URL(s)") + ": ")
    term.type("http://broker.example.cn")
    term.expect(
        t("“{url}” is not a broker URL: expected mqtts://HOST or mqtts://HOST:PORT", url="http://broker.example.cn")
    )
    term.type("broker.example.cn:8883, mqtts://backup.example.cn")
    term.expect(t("The broker's CA certificate file (none: the system's trusted CAs)") + " [none]: ")
    term.type("")
    term.expect(t("1 or 2") + " [1]: ")
    term.type("2")
    term.expect(t("User name on the broker") + " [gw-1]: ")
    term.type("")
    term.expect(t("Password (not shown; kept in {path}, mode 0600)", path=site_dir / "mqtt-password"))
    term.type("s3cret-Pw!")
    term.expect(t("The password again"))
    term.type("s3cret-Pw!")
    term.expect(t("Serial device (none: no RS-485 line)") + " [/dev/ttyUSB0]: ")
    term.type("/dev/ttyUSB9")
    term.expect(t("Baud rate ({bauds})", bauds="2400, 4800, 9600, 19200, 38400, 57600, 115200") + " [9600]: ")
    term.type("1234")
    term.expect(t("expected one of {bauds}", bauds="2400, 4800, 9600, 19200, 38400, 57600, 115200"))
    term.type("19200")
    term.expect(t("State dir (the local store: keep it on persistent storage)"))
    term.type("")
    term.expect(t("Time zone") + " [Asia/Shanghai]: ")
    term.type("")
    term.expect(t("School hours (none: no schedule for now)") + " [none]: ")
    term.type("mon-fri 07:30-17:30")
    term.expect(t("Write the files now?") + " [y]: ")
    term.type("y")
    term.expect(t("Check: campus-edge check-config {config}", config=site_dir / "gateway.toml"))
    term.finish()


def _check_dialogue_site(site_dir: Path, lang: str) -> None:
    text = (site_dir / "gateway.toml").read_text(encoding="utf-8")
    explained = tr("Relative paths are taken from the folder of this file.", lang)
    assert f"# {explained}" in text
    cfg = load_config(site_dir / "gateway.toml")
    assert (cfg.site.id, cfg.site.name, cfg.gateway.id) == ("demo-school", "第一中学东校区", "gw-1")
    assert cfg.mqtt.urls == ("mqtts://broker.example.cn:8883", "mqtts://backup.example.cn")
    assert cfg.mqtt.username == "gw-1"
    assert cfg.mqtt.password_file == site_dir / "mqtt-password"
    assert (site_dir / "mqtt-password").read_text() == "s3cret-Pw!\n"
    assert stat.S_IMODE((site_dir / "mqtt-password").stat().st_mode) == 0o600
    assert [(b.type, b.port, b.baud) for b in cfg.buses] == [("rtu", "/dev/ttyUSB9", 19200)]  # type: ignore[union-attr]
    assert cfg.gateway.state_dir == site_dir.absolute() / "state"
    assert cfg.schedule is not None
    assert [(p.days, p.start, p.end) for p in cfg.schedule.periods] == [
        (("mon", "tue", "wed", "thu", "fri"), "07:30", "17:30")
    ]
    assert not (site_dir / "tls" / "gateway.key").exists()  # user name and password: no client key


def test_init_dialogue_through_a_pipe_with_a_wrong_time_zone(tmp_path: Path) -> None:
    """Answers piped in (a script, or a laptop's serial console) work the same; a wrong one is asked again."""
    answers = "\n".join(
        ["demo-school", "", "gw-east-gate", BROKER, "", "1", "none", "/var/lib/campus-edge", "Mars/Olympus",
         "Asia/Shanghai", "", "yes"]
    )  # fmt: skip
    result = run_init("--dir", str(tmp_path / "etc"), stdin=answers + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unknown time zone “Mars/Olympus”: expected e.g. Asia/Shanghai" in result.stdout
    assert result.stdout.count("Time zone [Asia/Shanghai]: ") == 2
    cfg_text = (tmp_path / "etc" / "gateway.toml").read_text()
    assert '\n[reports]\ntimezone = "Asia/Shanghai"\n' in cfg_text
    assert "\n[[buses]]\n" not in cfg_text  # none: the RS-485 line is only an example
    with pytest.raises(ConfigError, match=r"gateway\.toml:\d+: mqtt\.cert_file: cannot read .*gateway\.crt"):
        load_config(tmp_path / "etc" / "gateway.toml")  # the gateway waits for its certificate


@pytest.mark.parametrize(
    ("stdin", "lang", "said"),
    [
        ("demo-school\n", "C.UTF-8", "Stopped; nothing was written."),  # input ends mid-way
        ("demo-school\n\n\n" + BROKER + "\n\n\nnone\n\n\n\nn\n", "zh_CN.UTF-8", "已停止; 没有写入任何文件。"),
    ],
)
def test_init_dialogue_stopped_writes_nothing(tmp_path: Path, stdin: str, lang: str, said: str) -> None:
    """End of input, or no at the end: exit 1, and the directory is not even made."""
    result = run_init("--dir", str(tmp_path / "etc"), stdin=stdin, lang=lang)
    assert result.returncode == 1
    assert said in result.stdout
    assert not (tmp_path / "etc").exists()


def sign_request(request: x509.CertificateSigningRequest, directory: Path) -> Path:
    """What the platform does with the request: a CA of its own signs it. Returns the CA certificate's file."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test platform CA")])
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=1)
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(request.subject).issuer_name(ca_name).public_key(request.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
        .add_extension(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (directory / "gateway.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return directory / "ca.pem"


def test_init_flags_make_a_key_and_a_request_that_name_the_gateway(tmp_path: Path) -> None:
    """--non-interactive: an EC P-256 key, 0600, whose public key the request carries; the request's signature
    verifies and it names {gateway}.{site}; signed, the configuration loads and OpenSSL pairs key and certificate."""
    site_dir = tmp_path / "etc"
    result = run_init(*flags(site_dir))
    assert result.returncode == 0, result.stderr
    tls = site_dir / "tls"
    assert stat.S_IMODE((tls / "gateway.key").stat().st_mode) == 0o600
    key = serialization.load_pem_private_key((tls / "gateway.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    request = x509.load_pem_x509_csr((tls / "gateway.csr").read_bytes())
    assert request.is_signature_valid
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert request.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-east-gate.demo-school"
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gw-east-gate.demo-school"]
    usage = request.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "gw-east-gate.demo-school" in result.stdout
    assert str(tls / "gateway.crt") in result.stdout  # where to put what the platform returns
    assert (site_dir / "command-keys").is_dir()

    sign_request(request, tls)
    cfg = load_config(site_dir / "gateway.toml")
    assert (cfg.site.id, cfg.site.name, cfg.gateway.id, cfg.mqtt.urls) == (
        "demo-school", "Demo School", "gw-east-gate", (BROKER,),
    )  # fmt: skip
    assert (cfg.mqtt.cert_file, cfg.mqtt.key_file) == (tls / "gateway.crt", tls / "gateway.key")
    assert cfg.schedule is None
    ssl.create_default_context().load_cert_chain(tls / "gateway.crt", tls / "gateway.key")


def test_init_nothing_is_overwritten_without_force_and_the_key_never(tmp_path: Path) -> None:
    """A second init is refused and changes nothing; with --force the configuration and request are new, the key
    (and so any certificate already signed for it) stays."""
    site_dir = tmp_path / "etc"
    assert run_init(*flags(site_dir)).returncode == 0
    files = [site_dir / "gateway.toml", site_dir / "tls" / "gateway.key", site_dir / "tls" / "gateway.csr"]
    before = [f.read_bytes() for f in files]

    again = run_init(*flags(site_dir, "--gateway-id", "gw-2"))
    assert again.returncode == 2
    assert again.stderr == (
        f"campus-edge: {site_dir}/gateway.toml exists already and is not overwritten; campus-edge init --force "
        "replaces it (the TLS private key is kept in any case)\n"
    )
    assert [f.read_bytes() for f in files] == before
    asked = run_init("--dir", str(site_dir), stdin="demo-school\n")
    assert asked.returncode == 2  # refused before the first question
    assert "Site id" not in asked.stdout

    forced = run_init(*flags(site_dir, "--gateway-id", "gw-2", "--force"))
    assert forced.returncode == 0, forced.stderr
    config, key, request = (f.read_bytes() for f in files)
    assert config != before[0]
    assert 'id = "gw-2"' in config.decode()
    assert key == before[1]
    new_request = x509.load_pem_x509_csr(request)
    old_request = x509.load_pem_x509_csr(before[2])
    assert new_request.subject.rfc4514_string() == "CN=gw-2.demo-school"
    assert new_request.public_key() == old_request.public_key()
    assert "(kept: it was there already)" in forced.stdout


def test_init_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    """A key file left readable by others is not used for a request: the installer is told to chmod it."""
    (tmp_path / "tls").mkdir()
    key = tmp_path / "tls" / "gateway.key"
    key.write_bytes(b"not even a key")
    key.chmod(0o644)
    result = run_init(*flags(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"campus-edge: {key}: others may read this key (mode 0644); chmod 600 {key}\n"
    assert not (tmp_path / "gateway.toml").exists()


def test_init_flags_with_a_password_file_and_a_ca(tmp_path: Path) -> None:
    """User name and password file: a readable-by-all file is refused naming the flag; a private one is used
    where it is, the CA is copied beside the configuration, and the site loads at once."""
    secret = tmp_path / "broker-password"
    secret.write_text("correct-horse\n")
    secret.chmod(0o644)
    ca_dir = tmp_path / "usb"
    ca_dir.mkdir()
    ca = sign_request(x509.load_pem_x509_csr(_any_request()), ca_dir)
    args = flags(tmp_path / "etc", "--auth", "password", "--username", "gw-east", "--password-file", str(secret))
    args += [
        "--ca-file",
        str(ca),
        "--rs485-port",
        "/dev/ttyAMA0",
        "--baud",
        "38400",
        "--school-hours",
        "周一-周五 7:30-17:00",
    ]
    refused = run_init(*args, lang="zh_CN.UTF-8")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"campus-edge: --password-file: {secret}: 其他用户可以读取 (权限 0644); 请执行 chmod 600 {secret}\n"
    )
    secret.chmod(0o600)
    result = run_init(*args)
    assert result.returncode == 0, result.stderr
    cfg = load_config(tmp_path / "etc" / "gateway.toml")
    assert (cfg.mqtt.username, cfg.mqtt.password_file) == ("gw-east", secret)
    assert cfg.mqtt.ca_file == tmp_path / "etc" / "tls" / "platform-ca.pem"
    assert cfg.mqtt.ca_file.read_bytes() == ca.read_bytes()
    assert [(b.port, b.baud) for b in cfg.buses] == [("/dev/ttyAMA0", 38400)]  # type: ignore[union-attr]
    assert cfg.schedule is not None
    assert cfg.schedule.periods[0].start == "07:30"
    assert not (tmp_path / "etc" / "tls" / "gateway.key").exists()


def _any_request() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("broker")]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_init_flags_missing_or_wrong_are_named(tmp_path: Path) -> None:
    """Scripted installs learn which flag is missing or wrong, and nothing is written."""
    missing = run_init("--dir", str(tmp_path), "--non-interactive", "--broker", BROKER)
    assert (missing.returncode, missing.stderr) == (2, "campus-edge: --site-id is needed with --non-interactive\n")
    plain = run_init(*flags(tmp_path, "--broker", "mqtt://127.0.0.1:1883"))
    assert plain.returncode == 2
    assert plain.stderr == (
        "campus-edge: --broker: “mqtt://127.0.0.1:1883” is plaintext MQTT: use mqtts:// (plaintext only on a test "
        "bench, with campus-edge init --allow-plaintext)\n"
    )
    assert list(tmp_path.iterdir()) == []


def _uncommented(text: str) -> str:
    """The file with every example's "#" removed (prose comments start with "# " and stay)."""
    return re.sub(r"^#(?=[^ #\n-])", "", text, flags=re.MULTILINE)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize("hours", [(), (SchoolPeriod(("sat",), "08:00", "12:00"),)])
def test_init_examples_are_valid_configuration_once_uncommented(
    tmp_path: Path, lang: str, hours: tuple[SchoolPeriod, ...]
) -> None:
    """Every commented example (buses, devices, doors, relays, a lane, the schedule, a command key) is what the
    loader accepts, together, once its "#" is removed."""
    set_language(lang)
    try:
        secret = tmp_path / "pw"
        secret.write_text("correct-horse\n")
        secret.chmod(0o600)
        answers = SiteAnswers(
            site_id="demo-school", gateway_id="gw-1", broker_urls=(BROKER,), auth="password", username="gw-1",
            password_file=secret, rs485_port=None, state_dir=tmp_path / "state", school_hours=hours,
        )  # fmt: skip
        layout = SiteLayout(tmp_path / "etc")
        written = write_site(answers, layout)
    finally:
        set_language("en")
    new_keypair(written.command_keys, "platform-2026")
    ca = sign_request(x509.load_pem_x509_csr(_any_request()), tmp_path)
    (layout.tls_dir / "platform-ca.pem").write_bytes(ca.read_bytes())  # the example names the CA's usual place
    config = layout.config
    assert load_config(config).devices == ()
    config.write_text(_uncommented(config.read_text(encoding="utf-8")), encoding="utf-8")
    cfg = load_config(config)
    assert [d.id for d in cfg.devices] == ["facp-1", "smoke-101", "bollard-east"]
    assert [b.id for b in cfg.buses] == ["rs485-1", "gate-tcp"]
    assert [g.id for g in cfg.gpio.inputs] == ["door-main", "panel-trouble", "panel-fire-relay"]
    assert [lane.id for lane in cfg.lanes] == ["lane-east"]
    assert cfg.commands is not None
    assert [k.id for k in cfg.commands.keys] == ["platform-2026"]
    assert cfg.schedule is not None
    assert cfg.schedule.holidays == (datetime.date(2026, 10, 1), datetime.date(2026, 10, 2))


def test_init_answer_checks_give_the_reason() -> None:
    """The checks the dialogue and the flags share."""
    assert check_id("gw-east_2") == "gw-east_2"
    with pytest.raises(Invalid, match=r"^“-gw” cannot be an id: use 1 to 64 lowercase letters"):
        check_id("-gw")
    assert check_urls("broker.example.cn，backup.example.cn:8884", False) == (  # noqa: RUF001 (a Chinese comma)
        "mqtts://broker.example.cn",
        "mqtts://backup.example.cn:8884",
    )
    with pytest.raises(Invalid, match="is not a broker URL"):
        check_urls("mqtts://broker:99999", False)
    assert check_school_hours("周一-周五 7:30-17:30；sat,sun 08:00-12:00") == (  # noqa: RUF001
        SchoolPeriod(("mon", "tue", "wed", "thu", "fri"), "07:30", "17:30"),
        SchoolPeriod(("sat", "sun"), "08:00", "12:00"),
    )
    for wrong in ("fri-mon 07:30-17:30", "mon-fri 25:00-17:30", "weekdays", "mon-fri 7:30"):
        with pytest.raises(Invalid, match="is not school hours"):
            check_school_hours(wrong)


def test_init_comments_wrap_english_at_spaces_and_chinese_anywhere() -> None:
    """Comment lines fit the width, counting a Chinese character as two columns, and none starts with a comma."""
    english = wrap("word " * 40, 50)
    assert all(len(line) <= 50 for line in english)
    assert " ".join(english).split() == ["word"] * 40
    chinese = wrap("本网关的证书和私钥，私钥在本网关上生成。" * 6, 40)  # noqa: RUF001
    assert all(sum(2 if ord(c) > 0x2E80 else 1 for c in line) <= 40 for line in chinese)
    assert not any(line.startswith(("，", "。")) for line in chinese)  # noqa: RUF001
    assert "".join(chinese) == "本网关的证书和私钥，私钥在本网关上生成。" * 6  # noqa: RUF001


def test_init_help_follows_the_locale() -> None:
    """`campus-edge init --help` speaks the terminal's language (help is printed before --lang is read)."""
    zh = run_init("--help", lang="zh_CN.UTF-8")
    assert "--force               替换已有的配置 (TLS 私钥永不替换)" in zh.stdout
    en = run_init("--help", lang="en_GB.UTF-8")
    assert "--force               replace an existing configuration (never the TLS key)" in en.stdout
