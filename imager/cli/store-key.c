/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The key of an encrypted store: where it comes from, and the one function
 * every verb opens a store with (cli_store_open()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "imager/crypt.h"
#include "imager/store.h"
#include "store-key.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct store *, store_free)
DEFINE_CLEANUP(struct crypt_secret *, crypt_secret_free)

#define PROMPT_ATTEMPTS 3

const char *arg_key_file;
bool arg_no_encryption;

/* The secret that unlocked a store in this process: a second open asks no second time. */
static struct crypt_secret *cached_secret;

static void __attribute__((destructor)) secret_cache_wipe(void)
{
	cached_secret = crypt_secret_free(cached_secret);
}

int cli_strip_key_options(int argc, char *argv[])
{
	int out = 0, i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (strcmp(a, "--no-encryption") == 0) {
			arg_no_encryption = true;
			continue;
		}
		if (strcmp(a, "--key-file") == 0) {
			if (i + 1 >= argc)
				return usage_error(NULL, "option '--key-file' requires a FILE");
			arg_key_file = argv[++i];
			continue;
		}
		if (startswith(a, "--key-file=")) {
			arg_key_file = a + strlen("--key-file=");
			if (!*arg_key_file)
				return usage_error(NULL, "option '--key-file' requires a FILE");
			continue;
		}
		argv[out++] = argv[i];
	}
	for (; i < argc; i++)
		argv[out++] = argv[i];
	argv[out] = NULL;
	return out;
}

static int load_key_file(const char *path, struct crypt_secret **ret)
{
	int r = crypt_secret_load_key_file(AT_FDCWD, path, ret);

	if (r == -ENOENT)
		return log_error_errno(r, "Key file '%s' does not exist.", path);
	if (r == -EMSGSIZE)
		return log_error_errno(-EINVAL,
				       "Key file '%s' must hold %d to %d bytes (make one "
				       "with 'imager store make-key-file FILE').",
				       path, CRYPT_KEY_FILE_BYTES_MIN, CRYPT_KEY_FILE_BYTES_MAX);
	if (r < 0)
		return log_error_errno(r, "Failed to read key file '%s': %m", path);
	return 0;
}

/* One line from the terminal without echo; the newline is dropped. */
static int read_passphrase(const char *prompt, struct crypt_secret **ret)
{
	struct termios old, quiet;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool restore;
	int r;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	restore = tcgetattr(STDIN_FILENO, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t) ECHO;
		quiet.c_lflag |= ECHONL;
		(void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	n = getline(&line, &cap, stdin);
	if (restore)
		(void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (n < 0) {
		free(line);
		return log_error_errno(-ECANCELED, "No passphrase was typed.");
	}
	if (n > 0 && line[n - 1] == '\n')
		line[--n] = 0;
	r = crypt_secret_new(CRYPT_SECRET_PASSPHRASE, line, (size_t) n, ret);
	OPENSSL_cleanse(line, cap);
	free(line);
	if (r == -EMSGSIZE)
		return log_error_errno(-EINVAL, "A passphrase has 1 to %d bytes.",
				       CRYPT_PASSPHRASE_BYTES_MAX);
	return r < 0 ? log_error_errno(r, "Failed to keep the passphrase: %m") : 0;
}

static int env_passphrase(const char *name, struct crypt_secret **ret)
{
	const char *e = getenv(name);
	int r;

	if (!e)
		return 0;
	r = crypt_secret_new(CRYPT_SECRET_PASSPHRASE, e, strlen(e), ret);
	if (r == -EMSGSIZE)
		return log_error_errno(-EINVAL, "$%s must hold 1 to %d bytes.", name,
				       CRYPT_PASSPHRASE_BYTES_MAX);
	if (r < 0)
		return log_error_errno(r, "Failed to keep the passphrase: %m");
	return 1;
}

/*
 * The key of an existing store, from the first source that is set.
 * Returns 1 if it was typed (so another attempt may be asked for).
 */
static int get_secret(const char *store_path, struct crypt_secret **ret, const char **ret_source)
{
	_cleanup_free_ char *prompt = NULL;
	const char *e;
	int r;

	if (arg_key_file) {
		*ret_source = "key file";
		r = load_key_file(arg_key_file, ret);
		return r < 0 ? r : 0;
	}
	e = getenv("IMAGER_KEY_FILE");
	if (e && *e) {
		*ret_source = "key file ($IMAGER_KEY_FILE)";
		r = load_key_file(e, ret);
		return r < 0 ? r : 0;
	}
	r = env_passphrase("IMAGER_PASSPHRASE", ret);
	if (r != 0) {
		*ret_source = "passphrase ($IMAGER_PASSPHRASE)";
		return r < 0 ? r : 0;
	}
	if (!isatty(STDIN_FILENO))
		return log_error_errno(-EACCES,
				       "Store '%s' is encrypted: give --key-file FILE, or "
				       "set $IMAGER_KEY_FILE or $IMAGER_PASSPHRASE.",
				       store_path);
	if (asprintf(&prompt, "Passphrase for store '%s': ", store_path) < 0)
		return log_oom();
	*ret_source = "passphrase";
	r = read_passphrase(prompt, ret);
	return r < 0 ? r : 1;
}

int cli_new_secret(const char *key_file, const char *store_path, struct crypt_secret **ret)
{
	_cleanup_(crypt_secret_freep) struct crypt_secret *a = NULL, *b = NULL;
	_cleanup_free_ char *prompt = NULL;
	int r;

	if (key_file)
		return load_key_file(key_file, ret);
	r = env_passphrase("IMAGER_NEW_PASSPHRASE", ret);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!isatty(STDIN_FILENO))
		return log_error_errno(-EINVAL, "No new key: give --new-key-file FILE or set "
						"$IMAGER_NEW_PASSPHRASE (or run on a terminal).");
	if (asprintf(&prompt, "New passphrase for store '%s': ", store_path) < 0)
		return log_oom();
	r = read_passphrase(prompt, &a);
	if (r < 0)
		return r;
	r = read_passphrase("Repeat it: ", &b);
	if (r < 0)
		return r;
	if (a->size != b->size || CRYPTO_memcmp(a->data, b->data, a->size) != 0)
		return log_error_errno(-EINVAL, "The passphrases differ; nothing was changed.");
	*ret = TAKE_PTR(a);
	return 0;
}

/* The key for a store about to be created: as for opening, but typed twice. */
static int get_creation_secret(const char *store_path, struct crypt_secret **ret)
{
	const char *e = getenv("IMAGER_KEY_FILE");
	int r;

	if (arg_key_file || (e && *e) || getenv("IMAGER_PASSPHRASE")) {
		const char *source;
		r = get_secret(store_path, ret, &source);
		return r < 0 ? r : 0;
	}
	if (!isatty(STDIN_FILENO))
		return log_error_errno(-EACCES,
				       "A new store is encrypted: give --key-file FILE, set "
				       "$IMAGER_KEY_FILE or $IMAGER_PASSPHRASE, or choose "
				       "--no-encryption.");
	return cli_new_secret(NULL, store_path, ret);
}

static int open_error(int r, const char *path)
{
	switch (-r) {
	case ENOENT:
		return log_error_errno(r, "Store '%s' does not exist.", path);
	case ENOTEMPTY:
		return log_error_errno(-EEXIST,
				       "'%s' is not empty and not a store: refusing to "
				       "make a store there.",
				       path);
	case EPROTONOSUPPORT:
		return log_error_errno(r,
				       "Store '%s' needs a newer imager (its format or "
				       "encryption is not known to this one).",
				       path);
	case EBADMSG:
		return log_error_errno(r, "Store '%s' has a damaged config file.", path);
	default:
		return log_error_errno(r, "Failed to open store '%s': %m", path);
	}
}

static void remember(struct crypt_secret *secret)
{
	crypt_secret_free(cached_secret);
	cached_secret = secret;
}

static int rejected(const char *path, const char *source)
{
	return log_error_errno(-EACCES, "The %s does not unlock store '%s' (wrong key).", source,
			       path);
}

static int unlock(struct store *s, const char *path)
{
	int r;

	if (cached_secret) {
		r = store_unlock(s, cached_secret);
		if (r >= 0)
			return 0;
		if (r != -EKEYREJECTED)
			goto fail;
		/* the cached secret belongs to another store: ask again below */
	}
	for (int attempt = 1;; attempt++) {
		_cleanup_(crypt_secret_freep) struct crypt_secret *secret = NULL;
		const char *source = NULL;
		int typed = get_secret(path, &secret, &source);

		if (typed < 0)
			return typed == -EACCES || typed == -ECANCELED ? -EACCES : typed;
		r = store_unlock(s, secret);
		if (r >= 0) {
			remember(TAKE_PTR(secret));
			return 0;
		}
		if (r != -EKEYREJECTED)
			goto fail;
		if (!typed || attempt >= PROMPT_ATTEMPTS)
			return rejected(path, source);
		log_error("Wrong passphrase for store '%s', try again.", path);
	}
fail:
	if (r == -EBADMSG)
		return log_error_errno(r,
				       "Store '%s': a key slot is damaged or does not match the "
				       "store's key.",
				       path);
	return log_error_errno(r, "Failed to unlock store '%s': %m", path);
}

static int store_open_full(const char *path, bool create, bool quiet_missing, struct store **ret)
{
	_cleanup_(store_freep) struct store *s = NULL;
	int r;

	r = store_open(path, false, &s);
	if (r == -ENOENT && create) {
		_cleanup_(crypt_secret_freep) struct crypt_secret *secret = NULL;

		if (!arg_no_encryption) {
			r = get_creation_secret(path, &secret);
			if (r < 0)
				return r == -ECANCELED ? -EACCES : r;
		}
		r = store_open_with_secret(path, true, secret, &s);
		if (r == -EKEYREJECTED)
			/* someone else created it at the same moment, with another key */
			return rejected(path, secret->kind == CRYPT_SECRET_KEY_FILE ? "key file"
										    : "passphrase");
		if (r >= 0 && secret)
			remember(TAKE_PTR(secret));
		if (r >= 0 && !arg_quiet)
			log_info("Created store '%s' (%s).", path,
				 store_is_encrypted(s) ? "encrypted, " CRYPT_CIPHER_NAME
						       : "not encrypted: --no-encryption");
	}
	if (r == -ENOENT && quiet_missing)
		return r;
	if (r < 0)
		return open_error(r, path);
	if (store_is_locked(s)) {
		r = unlock(s, path);
		if (r < 0)
			return r;
	} else if (!store_is_encrypted(s) && arg_key_file)
		log_warning("Store '%s' is not encrypted: --key-file is not used.", path);
	*ret = TAKE_PTR(s);
	return 0;
}

int cli_store_open(const char *path, bool create, struct store **ret)
{
	return store_open_full(path, create, false, ret);
}

int cli_store_open_if_exists(const char *path, struct store **ret)
{
	return store_open_full(path, false, true, ret);
}
