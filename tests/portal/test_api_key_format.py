from portal.keys import KEY_LENGTH, display_prefix, generate_key, has_valid_checksum, hash_key


def test_a_new_key_is_recognisable_offline_by_its_checksum():
    key = generate_key()
    assert key.startswith("sk-tw-") and len(key) == KEY_LENGTH
    assert has_valid_checksum(key)


def test_a_key_with_one_character_changed_fails_the_checksum():
    key = generate_key()
    tampered = key[:20] + ("a" if key[20] != "a" else "b") + key[21:]
    assert not has_valid_checksum(tampered)


def test_the_hash_depends_on_the_pepper_and_the_prefix_reveals_no_secret():
    key = generate_key()
    assert hash_key(key, pepper="one") != hash_key(key, pepper="two")
    assert display_prefix(key) == key[:14] and key[14:] not in display_prefix(key)
