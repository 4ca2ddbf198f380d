"""Chef client keys and password hashing."""

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from opscm.pki import InvalidPublicKey, check_rsa_public_key, generate_rsa_key, hash_password, verify_password
from opscm.pki.keys import _PEM_BLOCK, _pem_blocks, checked_key_fingerprint, public_key_fingerprint
from tests.support.pki import rsa_public_key_pem


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def pkcs1(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.PKCS1).decode()


def refusal(value, **kw) -> str:
    with pytest.raises(InvalidPublicKey) as info:
        check_rsa_public_key(value, **kw)
    return str(info.value)


# --- accepted, normalized to SubjectPublicKeyInfo -------------------------------------

def test_spki_returned_normalized(spki):
    assert check_rsa_public_key(spki) == spki


def test_pkcs1_converted_to_spki(pkcs1, spki):
    assert pkcs1.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert check_rsa_public_key(pkcs1) == spki


@pytest.mark.parametrize(
    "wrap",
    [
        lambda p: "  \n" + p + "\n\n",
        lambda p: "'" + p + "'",
        lambda p: '"' + p.strip() + '"',
        lambda p: " '\n" + p + "' ",
        lambda p: "\"'" + p + "'\"",
        lambda p: p.replace("\n", "\r\n"),
        lambda p: p.replace("\n", " "),  # newlines lost to shell word splitting
    ],
    ids=["whitespace", "single-quotes", "double-quotes", "quotes-and-spaces", "nested-quotes", "crlf", "one-line"],
)
def test_tolerated_wrappings(spki, pkcs1, wrap):
    assert check_rsa_public_key(wrap(spki)) == spki
    assert check_rsa_public_key(wrap(pkcs1)) == spki


@pytest.mark.parametrize("form", ["spki", "pkcs1", "wrapped"])
def test_a_checked_keys_fingerprint_needs_no_second_parse(form, spki, pkcs1):
    given = {"spki": spki, "pkcs1": pkcs1, "wrapped": spki.replace("\n", "\r\n  ")}[form]
    checked = check_rsa_public_key(given)
    assert checked_key_fingerprint(checked) == public_key_fingerprint(given) == public_key_fingerprint(spki)


@pytest.mark.openssl
def test_openssl_pubout_output_accepted(tmp_path, spki):
    subprocess.run(["openssl", "genrsa", "-out", "k.pem", "2048"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["openssl", "rsa", "-in", "k.pem", "-pubout"], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    assert check_rsa_public_key(out) == out


def test_min_bits_is_configurable(key, spki):
    assert check_rsa_public_key(spki, min_bits=1024) == spki
    assert refusal(spki, min_bits=3072) == "The RSA public key is 2048 bits; at least 3072 are required"


# --- refused ---------------------------------------------------------------------------

def test_small_key_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert refusal(pem) == "The RSA public key is 1024 bits; at least 2048 are required"


def test_numbers_of_a_real_rsa_key_are_accepted(key, spki):
    numbers = key.public_key().public_numbers()
    assert check_rsa_public_key(rsa_public_key_pem(numbers.n, numbers.e)) == spki
    assert check_rsa_public_key(rsa_public_key_pem(numbers.n, 2**255 + 1))  # odd, below 2**256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n, e: (n + 1, e), "The RSA public key's modulus is even: it is not a valid RSA key"),
        (lambda n, e: (n, 3), "The RSA public key's public exponent is 3; it must be greater than 3 (65537 is usual)"),
        (
            lambda n, e: (n, 2**256 + 1),
            "The RSA public key's public exponent is 257 bits long; it must be below 2**256 (65537 is usual)",
        ),
        # openssl itself will not load these: refused as "not a valid key".
        (lambda n, e: (n, 65536), "does not hold a valid key"),
        (lambda n, e: (n, 1), "does not hold a valid key"),
    ],
    ids=["even-modulus", "exponent-3", "huge-exponent", "even-exponent", "exponent-1"],
)
def test_numbers_no_rsa_key_has_are_refused(key, change, message):
    numbers = key.public_key().public_numbers()
    assert message in refusal(rsa_public_key_pem(*change(numbers.n, numbers.e)))


def test_sizes_outside_2048_to_16384_bits_are_refused(key):
    e = key.public_key().public_numbers().e
    assert refusal(rsa_public_key_pem(2**2047 - 1, e)) == "The RSA public key is 2047 bits; at least 2048 are required"
    assert refusal(rsa_public_key_pem(2**16384 + 1, e)) == (
        "The RSA public key is 16385 bits; at most 16384 are allowed"
    )


@pytest.mark.parametrize(
    "make, kind",
    [(lambda: ec.generate_private_key(ec.SECP256R1()), "an EC"),
     (lambda: ed25519.Ed25519PrivateKey.generate(), "an Ed25519")],
)
def test_non_rsa_refused(make, kind):
    pem = make().public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert refusal(pem) == f"The public key is {kind} key; an RSA key is required"


@pytest.mark.parametrize("value", ["", "   ", "''", '" "'])
def test_empty_refused(value):
    assert refusal(value) == "The public key is empty"


def test_garbage_refused():
    assert refusal("hello world") == (
        "The public key is not in PEM format: expected '-----BEGIN PUBLIC KEY-----' "
        "(as printed by 'openssl rsa -in key.pem -pubout')"
    )


def test_non_string_refused():
    assert refusal(b"-----BEGIN PUBLIC KEY-----") == "The public key must be a PEM string"


def test_bad_base64_refused():
    assert refusal("-----BEGIN PUBLIC KEY-----\nnot*base64\n-----END PUBLIC KEY-----") == \
        "The public key's '-----BEGIN PUBLIC KEY-----' block does not hold a valid key"


def test_valid_base64_but_not_a_key_refused():
    assert refusal("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----") == \
        "The public key's '-----BEGIN RSA PUBLIC KEY-----' block does not hold a valid key"


def test_truncated_key_refused(spki):
    lines = spki.splitlines()
    assert refusal("\n".join(lines[:2] + lines[-1:])) == "The public key's '-----BEGIN PUBLIC KEY-----' block does not hold a valid key"


def test_private_key_refused_without_echo(key):
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
        message = refusal(pem)
        assert message == ("This is a private key; send only its public key "
                           "(as printed by 'openssl rsa -in key.pem -pubout')")
        assert pem.splitlines()[1] not in message


def test_certificate_refused():
    assert refusal("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").startswith(
        "The value is a PEM 'CERTIFICATE', not a public key")


def test_ssh_key_refused():
    assert refusal("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ user@host").startswith(
        "The public key is in OpenSSH format; a PEM public key is required")


def test_two_keys_refused(spki):
    assert refusal(spki + spki) == "The value holds 2 PEM blocks; exactly one public key is expected"


def test_text_around_the_block_refused(spki):
    assert refusal("Value=" + spki) == "The public key has unexpected text before or after its PEM block"


def test_mismatched_quotes_not_stripped(spki):
    assert refusal("'" + spki) == "The public key has unexpected text before or after its PEM block"


# --- generated keys --------------------------------------------------------------------

def test_generate_rsa_key_pair():
    private, public = generate_rsa_key()
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert public.startswith("-----BEGIN PUBLIC KEY-----\n")
    key = serialization.load_pem_private_key(private.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode() == public
    assert check_rsa_public_key(public) == public


def test_generate_rsa_key_refuses_small_sizes():
    with pytest.raises(ValueError):
        generate_rsa_key(1024)


# --- passwords -------------------------------------------------------------------------

def test_password_roundtrip():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$scrypt$ln=15,r=8,p=1$")
    assert "correct horse" not in hashed
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct hors", hashed)
    assert not verify_password("", hashed)


def test_password_hashes_are_salted():
    assert hash_password("x") != hash_password("x")


def test_unicode_password():
    hashed = hash_password("pässwörd ✓")
    assert verify_password("pässwörd ✓", hashed)
    assert not verify_password("passwort", hashed)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plain",
        "$scrypt$ln=15,r=8,p=1$c2FsdA$",
        "$bcrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhh",
        "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhh",  # 128 GiB
        "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",  # hash too short
    ],
)
def test_unreadable_or_abusive_hashes_do_not_verify(hashed):
    assert verify_password("x", hashed) is False


def test_parameters_are_read_from_the_hash():
    # A hash made with other parameters (e.g. an older default) still verifies.
    from opscm.pki import keys
    import base64
    salt = b"0123456789abcdef"
    digest = keys._scrypt("pw", salt, 10, 4, 2, 32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    assert verify_password("pw", f"$scrypt$ln=10,r=4,p=2${b64(salt)}${b64(digest)}")
    assert not verify_password("pw", f"$scrypt$ln=11,r=4,p=2${b64(salt)}${b64(digest)}")


_HEAD, _TAIL = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    "text",
    [
        _HEAD + "\nMIIB\n" + _TAIL,
        _HEAD + _TAIL,
        "-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----",  # the markers overlap: no block
        _HEAD + "x" + _TAIL + _HEAD + "y" + _TAIL,
        _HEAD + "x-----END RSA PUBLIC KEY-----",
        "-----BEGIN RSA PUBLIC KEY-----abc-----END RSA PUBLIC KEY-----",
        _HEAD + "a-----END x" + _TAIL,
        "junk" + _HEAD + "a" + _TAIL,
        _HEAD + "a" + _TAIL + "junk",
        "-----BEGIN CERTIFICATE-----a-----END CERTIFICATE-----",
    ],
)
def test_a_lone_public_key_block_is_found_as_the_pattern_finds_it(text):
    assert _pem_blocks(text) == [(m.group(1), m.group(2), m.start(), m.end()) for m in _PEM_BLOCK.finditer(text)]
