/*
 * test_config_secret.c - the INI configuration reader and AES-256-GCM
 * secret storage: values, bounds, syntax errors, key file checks, tamper
 * detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pp_config.h"
#include "pp_secret.h"
#include "pp_state.h"
#include "pp_util.h"

static void test_config_values(void **state)
{
	(void)state;
	char err[256];
	int64_t v;
	pp_config_t *cfg = pp_config_from_string("[database]\nconninfo = host=/tmp port=5\n"
	                                         "[sender]\nbatch_size = 50\nbad = 12x\n"
	                                         "tls_verify = no\nbatch_size = 60\n",
	                                         err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(pp_config_get(cfg, "database", "conninfo", NULL), "host=/tmp port=5");
	assert_string_equal(pp_config_get(cfg, "DATABASE", "CONNINFO", NULL), "host=/tmp port=5");
	assert_null(pp_config_get(cfg, "database", "missing", NULL));
	assert_string_equal(pp_config_get(cfg, "x", "y", "dflt"), "dflt");
	/* The last duplicate wins. */
	assert_int_equal(
	    pp_config_get_int(cfg, "sender", "batch_size", 1, 1, 100, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 60);
	assert_int_equal(
	    pp_config_get_int(cfg, "sender", "batch_size", 1, 1, 10, &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "batch_size"));
	assert_int_equal(pp_config_get_int(cfg, "sender", "bad", 1, 0, 100, &v, err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "12x"));
	assert_int_equal(
	    pp_config_get_int(cfg, "sender", "absent", 7, 0, 100, &v, err, sizeof(err)), 0);
	assert_int_equal(v, 7);
	assert_int_equal(pp_config_get_bool(cfg, "sender", "tls_verify", 1), 0);
	assert_int_equal(pp_config_get_bool(cfg, "sender", "absent", 1), 1);
	pp_config_free(&cfg);
	assert_null(cfg);
}

static void test_config_errors(void **state)
{
	(void)state;
	char err[256];
	assert_null(pp_config_from_string("[database\nconninfo = x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "line 1"));
	assert_null(pp_config_load("/nonexistent/practicepost.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot open"));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void test_secret_round_trip(void **state)
{
	(void)state;
	char path[] = "/tmp/pp-test-keyXXXXXX", err[256];
	int fd = mkstemp(path);
	close(fd);
	unlink(path);
	pp_secret_key_t key, other;
	assert_int_equal(pp_secret_key_generate(path, err, sizeof(err)), 0);
	assert_int_equal(pp_secret_key_generate(path, err, sizeof(err)), -1); /* exists */
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), 0);

	const char *plain = "correct horse battery staple ünïcödé";
	char *stored = pp_secret_encrypt(&key, plain, strlen(plain));
	assert_true(strncmp(stored, "v1:", 3) == 0);
	assert_null(strstr(stored, "horse"));
	char *stored2 = pp_secret_encrypt(&key, plain, strlen(plain));
	assert_string_not_equal(stored, stored2); /* fresh nonce each time */
	size_t len;
	char *back = pp_secret_decrypt(&key, stored, &len);
	assert_non_null(back);
	assert_int_equal(len, strlen(plain));
	assert_string_equal(back, plain);
	pp_secret_wipe_free(back);

	/* Tampering with any byte of the ciphertext is detected. */
	for (size_t i = 3; i < strlen(stored); i++) {
		char *t = xstrdup(stored);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		char *r = pp_secret_decrypt(&key, t, NULL);
		if (r != NULL && strcmp(r, plain) == 0)
			fail_msg("tampered byte %zu still decrypted", i);
		pp_secret_wipe_free(r);
		free(t);
	}
	/* The wrong key fails; malformed forms fail. */
	memcpy(&other, &key, sizeof(key));
	other.key[0] ^= 1;
	assert_null(pp_secret_decrypt(&other, stored, NULL));
	assert_null(pp_secret_decrypt(&key, "plaintext", NULL));
	assert_null(pp_secret_decrypt(&key, "v1:", NULL));
	assert_null(pp_secret_decrypt(&key, "v1:abc", NULL));
	assert_null(pp_secret_decrypt(&key, "v1:AAAA", NULL));
	assert_null(pp_secret_decrypt(&key, NULL, NULL));
	/* Empty secret round-trips. */
	char *empty = pp_secret_encrypt(&key, "", 0);
	char *eback = pp_secret_decrypt(&key, empty, &len);
	assert_non_null(eback);
	assert_int_equal(len, 0);
	pp_secret_wipe_free(eback);
	free(empty);
	free(stored);
	free(stored2);
	unlink(path);
}

static void test_secret_key_file_checks(void **state)
{
	(void)state;
	char err[256];
	pp_secret_key_t key;
	const char *path = "/tmp/pp-test-key-checks";
	write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0644);
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0600);
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), 0);
	assert_int_equal(key.key[1], 0x11);
	write_file(path, "0011\n", 0600);
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "64 hex"));
	write_file(path, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
	           0600);
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "hexadecimal"));
	unlink(path);
	assert_int_equal(pp_secret_key_load(path, &key, err, sizeof(err)), -1);
}

static void test_state_names(void **state)
{
	(void)state;
	pp_state_t s;
	for (int i = 0; i < PP_STATE_COUNT; i++) {
		assert_int_equal(pp_state_parse(pp_state_name((pp_state_t)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(pp_state_parse("lost", &s), -1);
	assert_string_equal(pp_state_name(PP_STATE_QUEUED), "queued");
}

static void test_buffer_and_strlcpy(void **state)
{
	(void)state;
	pp_buf_t b;
	char small[4];
	pp_buf_init(&b);
	for (int i = 0; i < 1000; i++)
		pp_buf_printf(&b, "%d,", i);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	assert_int_equal(b.len, strlen(b.data));
	char *s = pp_buf_steal(&b);
	assert_null(b.data);
	free(s);
	assert_int_equal(pp_strlcpy(small, "abc", sizeof(small)), 0);
	assert_int_equal(pp_strlcpy(small, "abcd", sizeof(small)), -1);
	assert_string_equal(small, "abc");
	int64_t v;
	assert_int_equal(pp_parse_int64("-42", &v), 0);
	assert_int_equal(v, -42);
	assert_int_equal(pp_parse_int64("42 ", &v), -1);
	assert_int_equal(pp_parse_int64("99999999999999999999", &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_values),     cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_secret_round_trip), cmocka_unit_test(test_secret_key_file_checks),
	    cmocka_unit_test(test_state_names),       cmocka_unit_test(test_buffer_and_strlcpy),
	};
	return cmocka_run_group_tests_name("pp_config_secret", tests, NULL, NULL);
}
