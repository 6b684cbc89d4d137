/* tests/unit/test_fuzz_corpus.c - the fuzz targets' inputs as unit tests.
 *
 * Every file of fuzz/corpus/NAME (the seed corpora) and of
 * fuzz/regress/NAME (inputs that once crashed a fuzzer or broke one of its
 * invariants: a fixed bug's reproducer goes there) is fed to the same
 * harness libFuzzer runs (fuzz/NAME.c, compiled in here with gcc and no
 * fuzzing runtime). A harness abort()s when an invariant breaks, which
 * Check reports as an error naming the test. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_wire_one
#include "../../fuzz/fuzz_wire.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ffi_one
#include "../../fuzz/fuzz_ffi.c"
#undef LLVMFuzzerTestOneInput

/* Feed every regular file of TOP_SRCDIR/fuzz/SUB/NAME to fn; returns the
 * number of files (a missing folder is 0). */
static int replay(const char *sub, const char *name, int (*fn)(const uint8_t *, size_t))
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/%s/%s", TOP_SRCDIR, sub, name);
    DIR *d = opendir(dir);
    if (!d) {
        ck_assert_msg(errno == ENOENT, "%s: %s", dir, strerror(errno));
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "rb");
        ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        /* a copy of exactly len bytes, so that ASan sees any over-read */
        uint8_t *copy = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, buf, len);
        fn(copy, len);
        free(copy);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(config_corpus_and_reproducers_hold_the_loader_invariants)
{
    int n = replay("corpus", "fuzz_config", fuzz_config_one);
    replay("regress", "fuzz_config", fuzz_config_one);
    ck_assert_int_gt(n, 0);
}
END_TEST

START_TEST(wire_corpus_and_reproducers_decode_or_fail_cleanly_and_round_trip)
{
    int n = replay("corpus", "fuzz_wire", fuzz_wire_one);
    replay("regress", "fuzz_wire", fuzz_wire_one);
    ck_assert_int_gt(n, 0);
}
END_TEST

START_TEST(ffi_corpus_and_reproducers_call_with_exact_values_or_refuse)
{
    int n = replay("corpus", "fuzz_ffi", fuzz_ffi_one);
    replay("regress", "fuzz_ffi", fuzz_ffi_one);
    ck_assert_int_gt(n, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz-corpus");
    TCase *tc = tcase_create("replay");
    tcase_add_test(tc, config_corpus_and_reproducers_hold_the_loader_invariants);
    tcase_add_test(tc, wire_corpus_and_reproducers_decode_or_fail_cleanly_and_round_trip);
    tcase_add_test(tc, ffi_corpus_and_reproducers_call_with_exact_values_or_refuse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
