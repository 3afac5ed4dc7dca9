/*
 * fuzz_config.c - libFuzzer target for the INI configuration loader
 * (common/pp_config.c): the input is written to a memory file and loaded
 * through pp_config_load, the path every daemon takes, then read with the
 * getters the daemons use.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pp_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* config_read - what a daemon reads at start. */
static void config_read(const pp_config_t *cfg)
{
	static const char *const keys[][2] = {
	    {"database", "conninfo"}, {"paths", "run_dir"},    {"watchdog", "control"},
	    {"sender", "batch"},      {"fetcher", "idle"},     {"sms", "callback_port"},
	    {"log", "level"},         {"secrets", "key_file"}, {"", ""},
	};
	char err[512], ep[256];
	int64_t n;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = pp_config_get(cfg, keys[i][0], keys[i][1], NULL);
		if (v != NULL && strlen(v) > 1u << 20)
			abort();
		(void)pp_config_get_int(cfg, keys[i][0], keys[i][1], 5, -10, INT64_MAX, &n, err,
		                        sizeof(err));
		(void)pp_config_get_bool(cfg, keys[i][0], keys[i][1], 0);
	}
	pp_config_endpoint(cfg, "control", ep, sizeof(ep));
	pp_config_endpoint(cfg, "events", ep, sizeof(ep));
	if (strcmp(pp_config_path(cfg), "") == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	pp_config_t *cfg = pp_config_load(path, err, sizeof(err));
	close(fd);
	if (cfg == NULL) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	config_read(cfg);
	pp_config_free(&cfg);
	if (cfg != NULL)
		abort();
	return 0;
}
