from opscm.engines.signer_cache import SignerCache


def test_signer_is_loaded_once_per_key_and_reloaded_when_the_key_changes():
    cache = SignerCache(capacity=2)
    loads = []

    def loader(tag):
        def load():
            loads.append(tag)
            return object()

        return load

    first = cache.get("s1", b"key-1", "cert-1", loader("a"))
    assert cache.get("s1", b"key-1", "cert-1", loader("b")) is first
    restored = cache.get("s1", b"key-2", "cert-2", loader("c"))  # a restore brought another CA
    assert restored is not first
    cache.get("s2", b"k", "c", loader("d"))
    cache.get("s3", b"k", "c", loader("e"))  # evicts s1, the least recently used
    cache.get("s1", b"key-2", "cert-2", loader("f"))
    cache.forget("s3")
    cache.get("s3", b"k", "c", loader("g"))
    assert loads == ["a", "c", "d", "e", "f", "g"]
