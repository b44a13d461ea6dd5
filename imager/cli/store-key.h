/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Where the key of an encrypted store comes from (docs/CLI.md, "Encryption"),
 * in this order: --key-file FILE, $IMAGER_KEY_FILE, $IMAGER_PASSPHRASE, then
 * a prompt on the terminal (no echo; only if stdin is a terminal). A new
 * store is encrypted unless --no-encryption is given.
 */

#include <stdbool.h>

struct store;
struct crypt_secret;

/* Global options, accepted anywhere on the command line (see cli_strip_key_options()). */
extern const char *arg_key_file;
extern bool arg_no_encryption;

/*
 * Removes "--key-file FILE", "--key-file=FILE" and "--no-encryption" from
 * @argv (up to a "--"), so that every verb has them without parsing them.
 * Returns the new argc, or -EINVAL (logged) if FILE is missing.
 */
int cli_strip_key_options(int argc, char *argv[]);

/*
 * Opens the store at @path and, if it is encrypted, unlocks it with the key
 * from the sources above (asking up to three times on a terminal). With
 * @create a missing store is made: encrypted with that key as its first key
 * slot, or unencrypted with --no-encryption. Logs every failure, once:
 * -ENOENT (no such store), -EACCES (the key is wrong, or there is none:
 * exit code 6), -errno otherwise.
 */
int cli_store_open(const char *path, bool create, struct store **ret);
/* The same, but a missing store is -ENOENT without a message (probes). */
int cli_store_open_if_exists(const char *path, struct store **ret);

/*
 * A new secret for a key slot (store init, passwd, add-key): the key file
 * @key_file if set, else $IMAGER_NEW_PASSPHRASE, else a passphrase typed
 * twice on the terminal. Logs failures.
 */
int cli_new_secret(const char *key_file, const char *store_path, struct crypt_secret **ret);

/* store subcommands (verb-store-key.c), dispatched from verb-store.c */
int store_init_verb(int argc, char *argv[]);
int store_info_verb(int argc, char *argv[]);
int store_passwd_verb(int argc, char *argv[]);
int store_add_key_verb(int argc, char *argv[]);
int store_remove_key_verb(int argc, char *argv[]);
int store_make_key_file_verb(int argc, char *argv[]);
