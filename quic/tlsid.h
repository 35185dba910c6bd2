/* Who is at the other end of a QUIC session: TLS 1.3 with mutual Ed25519
 * authentication by raw public keys (RFC 7250) over GnuTLS, ALPN
 * "natagent/1" required. A client pins the one key it expects; a server
 * asks a caller's accept_key callback (a rendezvous admits any key, a peer
 * looks the key up in its peer table). Either way the key the peer presented
 * is recorded, and a failure leaves a reason for the caller to log.
 *
 * Keys are raw 32-byte Ed25519 seeds and public keys, so this module does
 * not depend on agent/. The DER that GnuTLS wants is built here by hand: for
 * Ed25519 (RFC 8410) both encodings are a fixed prefix and the key bytes. */
#ifndef NATAGENT_QUIC_TLSID_H
#define NATAGENT_QUIC_TLSID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#define QUIC_KEY_LEN        32
#define QUIC_KEY_B64_LEN    45  /* 44 characters and NUL, as in agent/keys.h */
#define QUIC_ALPN           "natagent/1"
#define QUIC_TLS_SPKI_LEN   44  /* SubjectPublicKeyInfo */
#define QUIC_TLS_PKCS8_LEN  48  /* OneAsymmetricKey (PKCS #8 v1) */
#define QUIC_TLS_REASON_LEN 192

/* Server side: whether a client presenting key may connect. It is asked
 * while the handshake runs, before the client has proven it holds the key
 * (its CertificateVerify comes next): decide here, but act on the key only
 * once the session is up (quic_session_peer_key). */
typedef bool (*quic_accept_key_fn)(void *arg, const uint8_t key[QUIC_KEY_LEN]);

/* Our identity as GnuTLS credentials: one per private key, shared by every
 * session that uses it. */
struct quic_tls_cred;

/* seed is the Ed25519 private key, pub its public key; a pub that does not
 * belong to seed is refused ("*why" says so). seed and pub NULL make a
 * credential without a key: such a client is turned away by every natagent
 * server (TLS alert), which is what tests use it for. Returns 0 or -1. */
int quic_tls_cred_new(struct quic_tls_cred **out, const uint8_t *seed,
		      const uint8_t *pub, const char **why);
void quic_tls_cred_free(struct quic_tls_cred *c);

/* Per-connection TLS state, embedded in a quic_session. */
struct quic_tls_session {
	gnutls_session_t gs;
	ngtcp2_crypto_conn_ref conn_ref;  /* gnutls_session_get_ptr() */
	bool pinned_set;
	uint8_t pinned[QUIC_KEY_LEN];
	quic_accept_key_fn accept_key;
	void *accept_arg;
	bool key_seen;                    /* peer_key holds what was presented */
	bool key_ok;                      /* ... and it passed the pin / callback */
	uint8_t peer_key[QUIC_KEY_LEN];
	char reason[QUIC_TLS_REASON_LEN]; /* why verification failed, or "" */
};

/* Sets up the GnuTLS side of one connection, in the order ngtcp2's GnuTLS
 * glue needs. A client passes pinned (32 bytes); a server passes accept_key.
 * get_conn/user_data fill conn_ref for ngtcp2. The caller then creates the
 * ngtcp2_conn and calls ngtcp2_conn_set_tls_native_handle(conn, t->gs).
 * Returns 0, or -1 with t->reason set. */
int quic_tls_session_init(struct quic_tls_session *t, struct quic_tls_cred *cred,
			  bool server, const uint8_t *pinned,
			  quic_accept_key_fn accept_key, void *accept_arg,
			  ngtcp2_crypto_get_conn get_conn, void *user_data);
void quic_tls_session_deinit(struct quic_tls_session *t);

/* DER encodings of an Ed25519 key (RFC 8410), and the strict inverse of the
 * first: true only for exactly an Ed25519 SubjectPublicKeyInfo. */
void quic_tls_spki_der(uint8_t out[QUIC_TLS_SPKI_LEN], const uint8_t pub[QUIC_KEY_LEN]);
void quic_tls_pkcs8_der(uint8_t out[QUIC_TLS_PKCS8_LEN], const uint8_t seed[QUIC_KEY_LEN]);
bool quic_tls_spki_key(uint8_t key[QUIC_KEY_LEN], const uint8_t *der, size_t len);

/* The static secret behind stateless reset tokens, derived from the private
 * key (HMAC-SHA256) so that a restarted agent still produces resets its
 * peers recognise, without storing anything. */
void quic_tls_reset_secret(uint8_t out[32], const uint8_t seed[QUIC_KEY_LEN]);

/* "bad certificate" for 42, per the TLS alert registry; "unknown" else. */
const char *quic_tls_alert_name(uint8_t alert);
/* A key in base64, as the config file and wg(8) write keys. */
void quic_tls_key_str(char out[QUIC_KEY_B64_LEN], const uint8_t key[QUIC_KEY_LEN]);

#endif
