/* natctl genkey | natctl pubkey, as wg genkey | wg pubkey. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/keys.h"
#include "agent/natctl.h"

int natctl_genkey(int argc, char **argv)
{
	uint8_t key[KEY_LEN];
	char b64[KEY_B64_LEN];
	struct stat st;

	if (argc != 1) {
		fprintf(stderr, "Usage: natctl %s\n", argv[0]);
		return 1;
	}
	/* Like wg: a private key written to a file others can read is a leak. */
	if (!fstat(STDOUT_FILENO, &st) && S_ISREG(st.st_mode) && (st.st_mode & 077))
		fprintf(stderr, "Warning: writing private key to world accessible file.\n");
	if (key_generate(key) < 0) {
		fprintf(stderr, "natctl genkey: cannot get random bytes\n");
		return 1;
	}
	key_to_base64(b64, key);
	memset(key, 0, sizeof(key));
	puts(b64);
	return 0;
}

int natctl_pubkey(int argc, char **argv)
{
	char line[256];
	uint8_t priv[KEY_LEN], pub[KEY_LEN];
	char b64[KEY_B64_LEN];
	const char *why;
	size_t n;

	if (argc != 1) {
		fprintf(stderr, "Usage: natctl %s < private.key\n", argv[0]);
		return 1;
	}
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "natctl pubkey: no key on stdin\n");
		return 1;
	}
	n = strcspn(line, "\r\n");
	line[n] = 0;
	if (!key_from_base64(priv, line, &why)) {
		fprintf(stderr, "natctl pubkey: the private key on stdin %s\n", why);
		return 1;
	}
	key_public(pub, priv);
	memset(priv, 0, sizeof(priv));
	key_to_base64(b64, pub);
	puts(b64);
	return 0;
}
