/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager store init [--store DIR | DIR]
 * imager store info [--store DIR] [--json]
 * imager store passwd [--store DIR] [--new-key-file FILE]
 * imager store add-key [--store DIR] [--new-key-file FILE]
 * imager store remove-key [--store DIR] SLOT
 * imager store make-key-file FILE
 *
 * The key slots of an encrypted store (docs/FORMAT.md, "Encryption"). Each
 * change rewrites the store's config only: chunks and manifests stay as
 * they are. The current key comes from the global options (store-key.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "imager/crypt.h"
#include "imager/store.h"
#include "output.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "util/log.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct crypt_secret *, crypt_secret_free)

static const char *arg_store, *arg_new_key_file;
static bool arg_json;

/* --store DIR, --new-key-file FILE (if @new_key), --json (if @json); returns optind or <= 0 */
static int parse_argv(int argc, char *argv[], const char *sub, const char *usage, bool new_key,
		      bool json, int min_args, int max_args)
{
	enum { ARG_NEW_KEY_FILE = 0x100 };
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"store", required_argument, NULL, 's'},
		{"new-key-file", required_argument, NULL, ARG_NEW_KEY_FILE},
		{"json", no_argument, NULL, 'J'},
		{}};
	_cleanup_free_ char *verb = NULL;
	int c;

	if (asprintf(&verb, "store %s", sub) < 0)
		return log_oom();
	while ((c = getopt_long(argc, argv, "hs:J", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("%s", usage);
			return 0;
		case 's':
			arg_store = optarg;
			break;
		case ARG_NEW_KEY_FILE:
			if (!new_key)
				return usage_error(verb, "unknown option '--new-key-file'");
			arg_new_key_file = optarg;
			break;
		case 'J':
			if (!json)
				return usage_error(verb, "unknown option '--json'");
			arg_json = true;
			break;
		default:
			return usage_error(verb, "bad option");
		}
	if (argc - optind < min_args)
		return usage_error(verb, "missing argument");
	if (argc - optind > max_args)
		return usage_error(verb, "unexpected argument '%s'", argv[optind + max_args]);
	return optind;
}

int store_init_verb(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	const char *path;
	int r;

	r = parse_argv(argc, argv, "init",
		       "Usage: imager store init [--store DIR | DIR] [--no-encryption] "
		       "[--key-file FILE]\n\n"
		       "Make a new store. It is encrypted (AES-256-GCM) unless --no-encryption is\n"
		       "given; its first key is --key-file FILE, $IMAGER_KEY_FILE,\n"
		       "$IMAGER_PASSPHRASE, or a passphrase typed twice.\n",
		       false, false, 0, 1);
	if (r <= 0)
		return r;
	path = r < argc ? argv[r] : cli_store_path(arg_store);
	/* an existing store is refused before any key is asked for */
	if (store_open(path, false, &s) >= 0)
		return log_error_errno(-EEXIST, "Store '%s' already exists.", path);
	r = cli_store_open(path, true, &s);
	if (r < 0)
		return r;
	if (!arg_quiet)
		printf("%s\n", store_path(s));
	return 0;
}

static const char *slot_kind_text(const struct store_key_slot *k, char *buf, size_t size)
{
	if (k->kind == CRYPT_SECRET_PASSPHRASE)
		snprintf(buf, size, "passphrase (scrypt N=%llu r=%u p=%u)",
			 (unsigned long long) k->scrypt.n, k->scrypt.r, k->scrypt.p);
	else
		snprintf(buf, size, "key file");
	return buf;
}

int store_info_verb(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_free_ struct store_key_slot *slots = NULL;
	char kid[CRYPT_KEY_ID_STRING_MAX], buf[96];
	const char *path;
	size_t n = 0;
	int r;

	r = parse_argv(argc, argv, "info",
		       "Usage: imager store info [--store DIR] [--json]\n\n"
		       "Show whether a store is encrypted, its key ID and its key slots.\n"
		       "Needs no key.\n",
		       false, true, 0, 0);
	if (r <= 0)
		return r;
	path = cli_store_path(arg_store);
	r = store_open(path, false, &s); /* locked is enough: nothing secret is shown */
	if (r == -ENOENT)
		return log_error_errno(r, "Store '%s' does not exist.", path);
	if (r < 0)
		return log_error_errno(r, "Failed to open store '%s': %m", path);
	if (store_is_encrypted(s)) {
		r = store_key_id(s, kid);
		if (r >= 0)
			r = store_key_slots(s, &slots, &n);
		if (r < 0)
			return log_error_errno(r, "Failed to read the key slots of '%s': %m", path);
	}
	if (arg_json) {
		struct json j;

		json_init(&j, stdout, true);
		json_object_begin(&j, NULL);
		json_string(&j, "path", path);
		json_string(&j, "encryption", store_is_encrypted(s) ? CRYPT_CIPHER_NAME : "none");
		json_string(&j, "chunk_ids", store_is_encrypted(s) ? "hmac-sha256" : "sha256");
		if (store_is_encrypted(s))
			json_string(&j, "key_id", kid);
		else
			json_null(&j, "key_id");
		json_array_begin(&j, "key_slots");
		for (size_t i = 0; i < n; i++) {
			json_object_begin(&j, NULL);
			json_string(&j, "id", slots[i].id);
			json_string(&j, "kind", crypt_secret_kind_to_string(slots[i].kind));
			if (slots[i].kind == CRYPT_SECRET_PASSPHRASE) {
				json_string(&j, "kdf", "scrypt");
				json_u64(&j, "scrypt_n", slots[i].scrypt.n);
				json_u64(&j, "scrypt_r", slots[i].scrypt.r);
				json_u64(&j, "scrypt_p", slots[i].scrypt.p);
			} else
				json_string(&j, "kdf", "hkdf-sha256");
			json_object_end(&j);
		}
		json_array_end(&j);
		json_object_end(&j);
		json_finish(&j);
		return 0;
	}
	printf("Store:       %s\n", path);
	if (!store_is_encrypted(s)) {
		printf("Encryption:  none (made with --no-encryption)\n");
		return 0;
	}
	printf("Encryption:  %s, chunk IDs hmac-sha256 (store key %s)\n", CRYPT_CIPHER_NAME, kid);
	for (size_t i = 0; i < n; i++)
		printf("Key slot:    %s %s\n", slots[i].id,
		       slot_kind_text(&slots[i], buf, sizeof(buf)));
	return 0;
}

static int open_encrypted(struct store **ret)
{
	_cleanup_(store_freep) struct store *s = NULL;
	const char *path = cli_store_path(arg_store);
	int r;

	r = cli_store_open(path, false, &s);
	if (r < 0)
		return r;
	if (!store_is_encrypted(s))
		return log_error_errno(-EINVAL, "Store '%s' is not encrypted: it has no keys.",
				       path);
	*ret = TAKE_PTR(s);
	return 0;
}

static int slot_error(int r, const char *path)
{
	if (r == -E2BIG)
		return log_error_errno(r, "Store '%s' has %d key slots already; remove one first.",
				       path, CRYPT_SLOTS_MAX);
	if (r == -ESTALE)
		return log_error_errno(-EBUSY,
				       "The keys of store '%s' changed meanwhile; nothing "
				       "was changed, try again.",
				       path);
	return log_error_errno(r, "Failed to change the keys of store '%s': %m", path);
}

static int add_or_replace(int argc, char *argv[], bool replace)
{
	_cleanup_(store_freep) struct store *s = NULL;
	_cleanup_(crypt_secret_freep) struct crypt_secret *secret = NULL;
	char id[CRYPT_SLOT_ID_STRING_MAX];
	int r;

	r = parse_argv(
		argc, argv, replace ? "passwd" : "add-key",
		replace ? "Usage: imager store passwd [--store DIR] [--new-key-file FILE]\n\n"
			  "Replace the key that unlocks the store (the current one comes from\n"
			  "--key-file, $IMAGER_KEY_FILE, $IMAGER_PASSPHRASE or a prompt) by a\n"
			  "new one: the key file --new-key-file, $IMAGER_NEW_PASSPHRASE, or a\n"
			  "passphrase typed twice. The old key stops working; no chunk or\n"
			  "manifest is rewritten.\n"
			: "Usage: imager store add-key [--store DIR] [--new-key-file FILE]\n\n"
			  "Add a key slot: the key file --new-key-file, $IMAGER_NEW_PASSPHRASE,\n"
			  "or a passphrase typed twice. The store must be unlocked with an\n"
			  "existing key. Key files: 'imager store make-key-file FILE'.\n",
		true, false, 0, 0);
	if (r <= 0)
		return r;
	r = open_encrypted(&s);
	if (r < 0)
		return r;
	r = cli_new_secret(arg_new_key_file, store_path(s), &secret);
	if (r < 0)
		return r;
	r = replace ? store_replace_key_slot(s, secret, id) : store_add_key_slot(s, secret, id);
	if (r < 0)
		return slot_error(r, store_path(s));
	if (!arg_quiet)
		printf("%s key slot %s (%s).\n", replace ? "Replaced the key: new" : "Added", id,
		       crypt_secret_kind_to_string(secret->kind));
	return 0;
}

int store_passwd_verb(int argc, char *argv[])
{
	return add_or_replace(argc, argv, true);
}

int store_add_key_verb(int argc, char *argv[])
{
	return add_or_replace(argc, argv, false);
}

int store_remove_key_verb(int argc, char *argv[])
{
	_cleanup_(store_freep) struct store *s = NULL;
	const char *id;
	int r;

	r = parse_argv(argc, argv, "remove-key",
		       "Usage: imager store remove-key [--store DIR] SLOT\n\n"
		       "Remove a key slot (IDs: 'imager store info'). Unlock the store with\n"
		       "another key than the one removed; the last slot cannot be removed.\n",
		       false, false, 1, 1);
	if (r <= 0)
		return r;
	id = argv[r];
	r = open_encrypted(&s);
	if (r < 0)
		return r;
	r = store_remove_key_slot(s, id);
	if (r == -ENOENT)
		return log_error_errno(r, "Store '%s' has no key slot '%s'.", store_path(s), id);
	if (r == -EBUSY)
		return log_error_errno(-ECANCELED,
				       "Key slot '%s' is the last one of store '%s': "
				       "without it nothing could be read.",
				       id, store_path(s));
	if (r == -EDEADLK)
		return log_error_errno(-ECANCELED,
				       "Key slot '%s' is the key this command was given; "
				       "unlock with another key to remove it.",
				       id);
	if (r < 0)
		return slot_error(r, store_path(s));
	if (!arg_quiet)
		printf("Removed key slot %s.\n", id);
	return 0;
}

int store_make_key_file_verb(int argc, char *argv[])
{
	int r;

	r = parse_argv(argc, argv, "make-key-file",
		       "Usage: imager store make-key-file FILE\n\n"
		       "Write a new key file: 64 random bytes, mode 0600. Use it with\n"
		       "--key-file FILE (store init, add-key --new-key-file, any verb).\n",
		       false, false, 1, 1);
	if (r <= 0)
		return r;
	r = crypt_key_file_generate(AT_FDCWD, argv[r]);
	if (r == -EEXIST)
		return log_error_errno(r, "'%s' exists already: not overwriting it.",
				       argv[argc - 1]);
	if (r < 0)
		return log_error_errno(r, "Failed to write key file '%s': %m", argv[argc - 1]);
	return 0;
}
