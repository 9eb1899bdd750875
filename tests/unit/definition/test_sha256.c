/* SHA-256: the FIPS 180-4 example vectors, the padding boundaries, and that
 * the digest does not depend on how the input is split across updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sha256.h"

static void hex_of(const uint8_t digest[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 0xf];
    }
    out[SHA256_HEX_LEN] = '\0';
}

static void test_standard_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopq"
         "rlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        sha256_hex(vectors[i].in, strlen(vectors[i].in), hex);
        assert_string_equal(hex, vectors[i].hex);
    }
}

static void test_million_a(void **state)
{
    (void)state;
    char chunk[997]; /* a prime, so updates straddle block boundaries */
    memset(chunk, 'a', sizeof(chunk));
    struct sha256 ctx;
    uint8_t digest[SHA256_DIGEST_LEN];
    char hex[SHA256_HEX_LEN + 1];
    sha256_init(&ctx);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        sha256_update(&ctx, chunk, n);
        left -= n;
    }
    sha256_final(&ctx, digest);
    hex_of(digest, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the 56-byte padding boundary and the 64-byte block: bytes 0, 1, 2, ... */
static void test_padding_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } vectors[] = {
        {55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"},
        {56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"},
        {63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"},
        {64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"},
        {65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"},
        {119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"},
        {120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"},
    };
    uint8_t data[128];
    char hex[SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        sha256_hex(data, vectors[i].len, hex);
        assert_string_equal(hex, vectors[i].hex);
    }
}

static void test_split_updates(void **state)
{
    (void)state;
    uint8_t data[300];
    char whole[SHA256_HEX_LEN + 1], split[SHA256_HEX_LEN + 1];
    uint8_t digest[SHA256_DIGEST_LEN];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    sha256_hex(data, sizeof(data), whole);
    for (size_t cut1 = 0; cut1 <= sizeof(data); cut1 += 13) {
        for (size_t cut2 = cut1; cut2 <= sizeof(data); cut2 += 29) {
            struct sha256 ctx;
            sha256_init(&ctx);
            sha256_update(&ctx, data, cut1);
            sha256_update(&ctx, data + cut1, cut2 - cut1);
            sha256_update(&ctx, data + cut2, sizeof(data) - cut2);
            sha256_final(&ctx, digest);
            hex_of(digest, split);
            assert_string_equal(split, whole);
        }
    }
    /* A changed byte changes the digest. */
    data[150] ^= 1;
    sha256_hex(data, sizeof(data), split);
    assert_string_not_equal(split, whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_split_updates),
    };
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
