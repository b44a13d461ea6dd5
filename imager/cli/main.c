/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "store-key.h"
#include "util/log.h"

#ifndef IMAGER_VERSION
#define IMAGER_VERSION "0.0-dev"
#endif

bool arg_quiet;

static const struct verb verbs[] = {
	{ "disks", "List local disks, their partitions and how they boot", verb_disks },
	{ "capture", "Capture disks into an image in a store", verb_capture },
	{ "flash", "Write an image onto disks, then verify it", verb_flash },
	{ "verify", "Compare disks with an image", verb_verify },
	{ "images", "List and describe the images of a store", verb_images },
	{ "snapshots", "Snapshots of single disks: create, list, restore, delete", verb_snapshots },
	{ "store", "Store maintenance: gc, verify", verb_store },
	{ "select", "Resolve disk hints (serial, model, size...) to disk nodes", verb_select },
	{ "keys", "Signing keys: generate, id", verb_keys },
	{}
};

int exit_status_from_errno(int r)
{
	if (r >= 0)
		return r;
	switch (-r) {
	case EINVAL:
		return IMAGER_EXIT_USAGE;
	case EBADMSG:
	case EILSEQ:
		return IMAGER_EXIT_DATA;
	case EBUSY:
	case ENOSPC:
	case ECANCELED:
	case EEXIST:
	case EXDEV:
		return IMAGER_EXIT_REFUSED;
	case ENOENT:
	case ENODEV:
		return IMAGER_EXIT_NOT_FOUND;
	case EACCES:
	case EPERM:
	case EROFS:
		return IMAGER_EXIT_ACCESS;
	case ENODATA:
		return IMAGER_EXIT_DATA;
	case EUCLEAN:
	case EKEYREJECTED: /* a trust policy refused an unsigned or untrusted image */
		return IMAGER_EXIT_REFUSED;
	case EMEDIUMTYPE:
	case ENOTBLK:
		return IMAGER_EXIT_NOT_DISK;
	default:
		return IMAGER_EXIT_FAILURE;
	}
}

int usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "imager%s%s: ", verb ? " " : "", verb ? verb : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'imager%s%s --help' for more information.\n", verb ? " " : "",
		verb ? verb : "");
	return -EINVAL;
}

static void help(void)
{
	printf("Usage: imager [--verbose] [--quiet] [--key-file FILE] [--no-encryption] VERB "
	       "[ARGS...]\n\n"
	       "A disk-imaging appliance: see, capture and flash disks.\n\nVerbs:\n");
	for (const struct verb *v = verbs; v->name; v++)
		printf("  %-12s %s\n", v->name, v->summary);
	printf("\nRun 'imager VERB --help' for a verb's options. Exit codes: docs/CLI.md.\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{}
	};
	int c;

	log_parse_environment();
	/* --key-file FILE and --no-encryption: global, accepted anywhere (store-key.h) */
	argc = cli_strip_key_options(argc, argv);
	if (argc < 0)
		return IMAGER_EXIT_USAGE;
	/* '+' stops at the first non-option: the verb parses its own options */
	while ((c = getopt_long(argc, argv, "+hVvq", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return IMAGER_EXIT_OK;
		case 'V':
			printf("imager %s\n", IMAGER_VERSION);
			return IMAGER_EXIT_OK;
		case 'v':
			log_set_max_level(LOG_LEVEL_DEBUG);
			break;
		case 'q':
			arg_quiet = true;
			log_set_max_level(LOG_LEVEL_WARNING);
			break;
		default:
			fprintf(stderr, "Try 'imager --help' for more information.\n");
			return IMAGER_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		help();
		return IMAGER_EXIT_USAGE;
	}
	for (const struct verb *v = verbs; v->name; v++)
		if (strcmp(v->name, argv[optind]) == 0) {
			argc -= optind;
			argv += optind;
			optind = 0; /* reset getopt for the verb */
			return exit_status_from_errno(v->run(argc, argv));
		}
	(void) usage_error(NULL, "unknown verb '%s'", argv[optind]);
	return IMAGER_EXIT_USAGE;
}
