/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The command-line front end: one verb per file (verb-*.c), dispatched from
 * main.c. A verb returns either a negative errno (already logged) or an exit
 * status >= 0; main() maps errnos to the documented exit codes below.
 */

#include <stdbool.h>

/* Exit codes are API: initramfs/ scripts and tests branch on them (docs/CLI.md). */
enum imager_exit {
	IMAGER_EXIT_OK = 0,
	IMAGER_EXIT_FAILURE = 1,   /* operational error; details on stderr */
	IMAGER_EXIT_USAGE = 2,     /* bad command line; nothing was touched */
	IMAGER_EXIT_DATA = 3,      /* data does not match its hash, corrupt store or manifest */
	IMAGER_EXIT_REFUSED = 4,   /* a safety check refused: in use, too small, no --yes */
	IMAGER_EXIT_NOT_FOUND = 5, /* a named disk, file or image does not exist */
	IMAGER_EXIT_ACCESS = 6,    /* permission denied opening a device or file */
	IMAGER_EXIT_NOT_DISK = 7,  /* the path is neither a block device nor a disk image */
};

int exit_status_from_errno(int r);

struct verb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char *argv[]);
};

/* Prints "imager VERB: MSG\nTry 'imager VERB --help'." style usage errors; returns -EINVAL. */
int usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Global options shared by all verbs. */
extern bool arg_quiet;

int verb_disks(int argc, char *argv[]);
int verb_capture(int argc, char *argv[]);
int verb_flash(int argc, char *argv[]);
int verb_verify(int argc, char *argv[]);
int verb_images(int argc, char *argv[]);
/* images subcommands (images-*.c), dispatched from verb-images.c */
int images_list(int argc, char *argv[]);
int images_describe(int argc, char *argv[]);
int images_create(int argc, char *argv[]);
int images_export(int argc, char *argv[]);
int images_deprecate(int argc, char *argv[]);
int images_delete(int argc, char *argv[]);
int images_sign(int argc, char *argv[]);
int verb_snapshots(int argc, char *argv[]);
int verb_store(int argc, char *argv[]);
int verb_select(int argc, char *argv[]);
int verb_keys(int argc, char *argv[]);
