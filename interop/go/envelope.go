// Package envelope is the reference reader of openkcm-envelope versions 1 and 2, the
// sealed MasterKey and shard files of the OpenKCM key ceremony (docs/formats.md sections 0
// and 1); version 2 is the transitional envelope of the old MasterKey in a rotation (1.9),
// refused at and after its expiry.
//
// It applies every reader rule of the document, in its order of checks:
//
//	Parse            size, ASCII, lexical rules, format and version, exact members at every
//	                 level, header bytes canonical (they are the AAD), field rules, strict
//	                 base64 and lengths, signature present
//	VerifySignature  Ed25519 over the signed message, public key = masterkey_fingerprint
//	Open / OpenAt    expected MasterKey and (version 2) the expiry, signature, recipient fingerprint = the unwrapping key's, unwrap the
//	                 data key, AES-256-GCM with the header bytes as AAD, payload length,
//	                 and for a MasterKey the HKDF-derived fingerprint = the header's
//
// A Go service copies this package; the KMS/HSM call goes behind the Unwrapper interface.
package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/hkdf"
)

// Format constants (docs/formats.md 1.1 to 1.3).
const (
	Format  = "openkcm-envelope"
	Version = 1
	// VersionTransitional is a transitional envelope (docs/formats.md 1.9).
	VersionTransitional = 2
	// MaxTransition is the longest transition window a reader accepts.
	MaxTransition   = 90 * 24 * time.Hour
	utcLayout       = "2006-01-02T15:04:05Z"
	MaxFileBytes    = 64 * 1024
	NonceLen        = 12
	TagLen          = 16
	DataKeyLen      = 32
	MasterKeyLen    = 32
	SigDomain       = "openkcm-envelope/v1 signature\x00"
	FingerprintSalt = "openkcm-ceremony/v1"
	FingerprintInfo = "openkcm-ceremony/v1/masterkey-signing-key"
)

// Wrap algorithms (wrapped_key.alg).
const (
	AlgRSAOAEP256 = "RSA-OAEP-256"
	AlgRSAOAEP    = "RSA-OAEP"
	AlgAgeX25519  = "age-X25519"
	AlgAgeSSH     = "age-ssh-ed25519"
)

var (
	safeText = regexp.MustCompile(`^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]{1,256}$`)
	hex64    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	utcTime  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)

	topLevel        = []string{"format", "version", "header", "wrapped_key", "nonce", "ciphertext", "signature"}
	headerRequired  = []string{"format_version", "kind", "cluster_id", "region_id", "masterkey_fingerprint", "kcv", "ceremony_id", "created_utc", "payload_encoding", "payload_length", "recipient"}
	recipientFields = []string{"name", "kind", "key_id", "key_version", "alg", "fingerprint"}
	recipientKinds  = map[string]bool{"aws-kms": true, "gcp-kms": true, "azure-kv": true, "vault-transit": true, "pkcs11-hsm": true, "custodian-rsa": true, "custodian-age": true}
	// the online recipients: the only ones a transitional envelope may be sealed to (1.9)
	onlineKinds = map[string]bool{"aws-kms": true, "gcp-kms": true, "azure-kv": true, "vault-transit": true, "pkcs11-hsm": true}
	// header.shard members and their ranges
	shardRanges = []struct {
		name     string
		min, max int64
	}{{"index", 1, 256}, {"set_id", 0, 32767}, {"group_index", 1, 16}, {"group_threshold", 1, 16}, {"member_index", 1, 16}, {"threshold", 1, 16}}
)

// Recipient is header.recipient.
type Recipient struct {
	Name, Kind, KeyID, KeyVersion, Alg, Fingerprint string
}

// Header is the decoded, checked header. Raw holds its bytes exactly as in the file: the AAD.
type Header struct {
	Raw                  []byte
	Kind                 string // "masterkey" or "shard"
	ClusterID, RegionID  string
	MasterKeyFingerprint []byte // 32-byte Ed25519 public key
	KCV                  string // first 16 hex digits of the fingerprint
	CeremonyID           string
	CreatedUTC           string
	PayloadEncoding      string
	PayloadLength        int
	Recipient            Recipient
	Shard                map[string]int64 // only for kind "shard"
	Transition           *Transition      // only for a version-2 (transitional) envelope
}

// Transition is header.transition of a transitional envelope (docs/formats.md 1.9): the
// old MasterKey of a rotation, usable only before Expires, to re-wrap to the successor.
type Transition struct {
	ExpiresUTC           string
	Expires              time.Time
	SuccessorFingerprint []byte // the new MasterKey's fingerprint (32 bytes)
}

// Envelope is a parsed envelope whose structure follows every rule; nothing is verified yet.
type Envelope struct {
	Header     Header
	Alg        string
	WrappedKey []byte
	Nonce      []byte
	Ciphertext []byte // AES-GCM ciphertext || 16-byte tag
	Signature  []byte // 64 bytes
}

// b64 decodes strict standard base64: padded, no line breaks, zero padding bits, non-empty.
func b64(m map[string]json.RawMessage, key, what string) ([]byte, error) {
	s, err := str(m, key, what)
	if err != nil {
		return nil, err
	}
	if s == "" || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%s.%s is not canonical standard base64", what, key)
	}
	out, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s.%s is not canonical standard base64 (RFC 4648 section 4)", what, key)
	}
	return out, nil
}

func safe(m map[string]json.RawMessage, key, what string) (string, error) {
	s, err := str(m, key, what)
	if err != nil {
		return "", err
	}
	if !safeText.MatchString(s) {
		return "", fmt.Errorf("%s.%s has characters outside the safe set", what, key)
	}
	return s, nil
}

// Parse checks an envelope file against every structural rule (docs/formats.md 0 and 1.7,
// checks 1 to 8). The signature itself is checked by VerifySignature (or Open).
func Parse(data []byte) (*Envelope, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes: larger than any envelope", len(data))
	}
	if err := checkLexical(data); err != nil {
		return nil, err
	}
	top, err := members(bytes.TrimSpace(data), "envelope", nil, topLevel...)
	if err != nil {
		return nil, err
	}
	if f, err := str(top, "format", "envelope"); err != nil || f != Format {
		return nil, fmt.Errorf("not an %s file (format member missing or different)", Format)
	}
	version, err := integer(top, "version", "envelope")
	if err != nil || (version != Version && version != VersionTransitional) {
		return nil, fmt.Errorf("envelope version %s is not supported (expected 1, or 2 for a transitional envelope)", string(top["version"]))
	}
	for _, k := range topLevel {
		if _, ok := top[k]; !ok {
			if k == "signature" {
				return nil, errors.New("the signature is missing: every envelope is signed; an unsigned envelope must not be used")
			}
			return nil, fmt.Errorf("envelope has no member %q", k)
		}
	}
	env := &Envelope{}
	if err := parseHeader(top["header"], version, &env.Header); err != nil {
		return nil, err
	}
	wk, err := members(top["wrapped_key"], "wrapped_key", []string{"alg", "recipient_fingerprint", "ciphertext"})
	if err != nil {
		return nil, err
	}
	if env.Alg, err = str(wk, "alg", "wrapped_key"); err != nil {
		return nil, err
	}
	if env.Alg != env.Header.Recipient.Alg {
		return nil, errors.New("wrapped_key.alg differs from header recipient.alg")
	}
	if fp, err := str(wk, "recipient_fingerprint", "wrapped_key"); err != nil || fp != env.Header.Recipient.Fingerprint {
		return nil, errors.New("wrapped_key.recipient_fingerprint differs from the header's")
	}
	if env.WrappedKey, err = b64(wk, "ciphertext", "wrapped_key"); err != nil {
		return nil, err
	}
	switch env.Alg {
	case AlgRSAOAEP256, AlgRSAOAEP:
		if len(env.WrappedKey) < 384 || len(env.WrappedKey) > 1024 {
			return nil, fmt.Errorf("wrapped data key is %d bytes: not an RSA-3072 or larger OAEP block", len(env.WrappedKey))
		}
	case AlgAgeX25519, AlgAgeSSH:
		want := "X25519"
		if env.Alg == AlgAgeSSH {
			want = "ssh-ed25519"
		}
		if err := checkAgeStanzas(env.WrappedKey, want); err != nil {
			return nil, err
		}
	}
	if env.Nonce, err = b64(top, "nonce", "envelope"); err != nil {
		return nil, err
	}
	if len(env.Nonce) != NonceLen {
		return nil, fmt.Errorf("nonce is %d bytes, expected 12", len(env.Nonce))
	}
	if env.Ciphertext, err = b64(top, "ciphertext", "envelope"); err != nil {
		return nil, err
	}
	if len(env.Ciphertext) != env.Header.PayloadLength+TagLen {
		return nil, fmt.Errorf("ciphertext is %d bytes; payload_length %d + 16-byte tag expected", len(env.Ciphertext), env.Header.PayloadLength)
	}
	sig, err := members(top["signature"], "signature", []string{"alg", "value"})
	if err != nil {
		return nil, err
	}
	if a, err := str(sig, "alg", "signature"); err != nil || a != "Ed25519" {
		return nil, errors.New("signature.alg must be Ed25519")
	}
	if env.Signature, err = b64(sig, "value", "signature"); err != nil {
		return nil, err
	}
	if len(env.Signature) != ed25519.SignatureSize {
		return nil, errors.New("an Ed25519 signature is 64 bytes")
	}
	return env, nil
}

func parseHeader(raw json.RawMessage, version int64, h *Header) error {
	m, err := members(raw, "header", headerRequired, "shard", "transition")
	if err != nil {
		return err
	}
	// The AAD is the header's bytes as written; they must be its canonical JSON (sorted
	// keys, no whitespace). encoding/json.Marshal of the decoded map gives exactly that
	// for values in the safe set.
	var generic map[string]interface{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	canonical, err := json.Marshal(generic)
	if err != nil || !bytes.Equal(canonical, raw) {
		return errors.New("the header is not written in canonical form: the file was reformatted or altered")
	}
	h.Raw = append([]byte(nil), raw...)
	if v, err := integer(m, "format_version", "header"); err != nil || v != version {
		return fmt.Errorf("header format_version %s differs from the envelope version %d", string(m["format_version"]), version)
	}
	if h.Kind, err = str(m, "kind", "header"); err != nil || (h.Kind != "masterkey" && h.Kind != "shard") {
		return errors.New("header kind must be masterkey or shard")
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"cluster_id", &h.ClusterID}, {"region_id", &h.RegionID}, {"ceremony_id", &h.CeremonyID}} {
		if *f.dst, err = safe(m, f.key, "header"); err != nil {
			return err
		}
	}
	fp, err := str(m, "masterkey_fingerprint", "header")
	if err != nil || !hex64.MatchString(fp) {
		return errors.New("header masterkey_fingerprint must be 64 lower-case hex digits")
	}
	h.MasterKeyFingerprint, _ = hex.DecodeString(fp)
	if h.KCV, err = str(m, "kcv", "header"); err != nil || h.KCV != fp[:16] {
		return errors.New("header kcv must be the first 16 hex digits of masterkey_fingerprint")
	}
	if h.CreatedUTC, err = str(m, "created_utc", "header"); err != nil || !utcTime.MatchString(h.CreatedUTC) {
		return errors.New("header created_utc must look like 2026-01-31T12:00:00Z")
	}
	wantEnc := map[string]string{"masterkey": "raw", "shard": "slip39-indices-u16be"}[h.Kind]
	if h.PayloadEncoding, err = str(m, "payload_encoding", "header"); err != nil || h.PayloadEncoding != wantEnc {
		return fmt.Errorf("header payload_encoding of a %s envelope must be %s", h.Kind, wantEnc)
	}
	plen, err := integer(m, "payload_length", "header")
	if err != nil {
		return err
	}
	h.PayloadLength = int(plen)
	if h.Kind == "masterkey" && plen != MasterKeyLen {
		return errors.New("a MasterKey payload is 32 bytes")
	}
	if h.Kind == "shard" && plen != 40 && plen != 66 {
		return errors.New("a shard payload is 40 or 66 bytes")
	}
	rec, err := members(m["recipient"], "header recipient", recipientFields)
	if err != nil {
		return err
	}
	r := &h.Recipient
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &r.Name}, {"kind", &r.Kind}, {"key_id", &r.KeyID}, {"alg", &r.Alg}} {
		if *f.dst, err = safe(rec, f.key, "header.recipient"); err != nil {
			return err
		}
	}
	if r.KeyVersion, err = str(rec, "key_version", "header.recipient"); err != nil || (r.KeyVersion != "" && !safeText.MatchString(r.KeyVersion)) {
		return errors.New("header recipient.key_version must be empty or in the safe set")
	}
	if !recipientKinds[r.Kind] {
		return fmt.Errorf("unknown recipient kind %q", r.Kind)
	}
	switch r.Alg {
	case AlgRSAOAEP256, AlgRSAOAEP, AlgAgeX25519, AlgAgeSSH:
	default:
		return fmt.Errorf("unknown wrap algorithm %q", r.Alg)
	}
	if r.Fingerprint, err = str(rec, "fingerprint", "header.recipient"); err != nil || !hex64.MatchString(r.Fingerprint) {
		return errors.New("header recipient.fingerprint must be 64 lower-case hex digits")
	}
	if err := parseTransition(m, version, h, fp); err != nil {
		return err
	}
	_, hasShard := m["shard"]
	if h.Kind == "masterkey" {
		if hasShard {
			return errors.New("only shard envelopes carry a shard object")
		}
		return nil
	}
	if !hasShard {
		return errors.New("a shard envelope needs header.shard")
	}
	names := make([]string, len(shardRanges))
	for i, s := range shardRanges {
		names[i] = s.name
	}
	sm, err := members(m["shard"], "header shard", names)
	if err != nil {
		return err
	}
	h.Shard = map[string]int64{}
	for _, s := range shardRanges {
		v, err := integer(sm, s.name, "header.shard")
		if err != nil || v < s.min || v > s.max {
			return fmt.Errorf("header shard.%s must be an integer from %d to %d", s.name, s.min, s.max)
		}
		h.Shard[s.name] = v
	}
	return nil
}

// parseTransition applies the rules of a version-2 header (docs/formats.md 1.9).
func parseTransition(m map[string]json.RawMessage, version int64, h *Header, fp string) error {
	_, has := m["transition"]
	if version == Version {
		if has {
			return errors.New("a version-1 envelope has no header.transition (a transitional envelope is version 2)")
		}
		return nil
	}
	if !has {
		return errors.New("a version-2 (transitional) envelope's header must have a transition object")
	}
	if h.Kind != "masterkey" {
		return errors.New("only a MasterKey envelope can be transitional (not a shard)")
	}
	if !onlineKinds[h.Recipient.Kind] {
		return fmt.Errorf("a transitional envelope is sealed to an online recipient only, not %q", h.Recipient.Kind)
	}
	t, err := members(m["transition"], "header transition", []string{"expires_utc", "successor_fingerprint"})
	if err != nil {
		return err
	}
	tr := &Transition{}
	succ, err := str(t, "successor_fingerprint", "header.transition")
	if err != nil || !hex64.MatchString(succ) {
		return errors.New("header transition.successor_fingerprint must be 64 lower-case hex digits")
	}
	if succ == fp {
		return errors.New("a transitional envelope names its own key as its successor")
	}
	tr.SuccessorFingerprint, _ = hex.DecodeString(succ)
	if tr.ExpiresUTC, err = str(t, "expires_utc", "header.transition"); err != nil || !utcTime.MatchString(tr.ExpiresUTC) {
		return errors.New("header transition.expires_utc must look like 2026-01-31T12:00:00Z")
	}
	if tr.Expires, err = time.Parse(utcLayout, tr.ExpiresUTC); err != nil {
		return errors.New("header transition.expires_utc is not a valid time")
	}
	created, err := time.Parse(utcLayout, h.CreatedUTC)
	if err != nil {
		return errors.New("header created_utc is not a valid time")
	}
	if !tr.Expires.After(created) {
		return errors.New("header transition.expires_utc is not after created_utc")
	}
	if tr.Expires.Sub(created) > MaxTransition {
		return errors.New("header transition window is more than 90 days")
	}
	h.Transition = tr
	return nil
}

// CheckExpiry refuses a transitional envelope at or after its expiry (check 8 of 1.7);
// a version-1 envelope has none.
func CheckExpiry(env *Envelope, now time.Time) error {
	t := env.Header.Transition
	if t != nil && !now.Before(t.Expires) {
		return fmt.Errorf("the transitional envelope expired at %s: the old MasterKey may no longer be used (re-wrap to the successor %x was due before then)", t.ExpiresUTC, t.SuccessorFingerprint[:8])
	}
	return nil
}

// checkAgeStanzas checks that a binary age v1 file has exactly one recipient stanza, of
// the given type (docs/formats.md 1.3: the payload is binary, not armored).
func checkAgeStanzas(file []byte, want string) error {
	if !bytes.HasPrefix(file, []byte("age-encryption.org/v1\n")) {
		return errors.New("wrapped data key is not a binary age v1 file")
	}
	end := bytes.Index(file, []byte("\n---"))
	if end < 0 {
		return errors.New("wrapped data key: age header has no MAC line")
	}
	var stanzas []string
	for _, line := range strings.Split(string(file[:end]), "\n")[1:] {
		if strings.HasPrefix(line, "-> ") {
			stanzas = append(stanzas, strings.Fields(line)[1])
		}
	}
	if len(stanzas) != 1 || stanzas[0] != want {
		return fmt.Errorf("the age-wrapped data key must have exactly one %s stanza", want)
	}
	return nil
}

// SignedMessage is what the signature covers (docs/formats.md 1.3 step 5).
func SignedMessage(env *Envelope) []byte {
	var b bytes.Buffer
	b.WriteString(SigDomain)
	for _, part := range [][]byte{env.Header.Raw, []byte(env.Alg), env.WrappedKey, env.Nonce, env.Ciphertext} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		b.Write(n[:])
		b.Write(part)
	}
	return b.Bytes()
}

// VerifySignature checks the Ed25519 signature with header.masterkey_fingerprint.
func VerifySignature(env *Envelope) error {
	if !ed25519.Verify(ed25519.PublicKey(env.Header.MasterKeyFingerprint), SignedMessage(env), env.Signature) {
		return errors.New("the signature does not verify: the envelope was altered or not sealed by this MasterKey's holder")
	}
	return nil
}

// DeriveFingerprint is the MasterKey's public fingerprint: the Ed25519 public key whose
// seed is HKDF-SHA256(ikm = the 32 key bytes, salt = "openkcm-ceremony/v1",
// info = "openkcm-ceremony/v1/masterkey-signing-key", L = 32).
func DeriveFingerprint(masterKey []byte) ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, masterKey, []byte(FingerprintSalt), []byte(FingerprintInfo)), seed); err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	for i := range seed {
		seed[i] = 0
	}
	pub := append([]byte(nil), priv.Public().(ed25519.PublicKey)...)
	for i := range priv {
		priv[i] = 0
	}
	return pub, nil
}

// Unwrapper opens the wrapped data key: a private key file here, a KMS/HSM call in a service.
type Unwrapper interface {
	// Fingerprint is the recipient fingerprint of the key (docs/formats.md 1.4), hex.
	Fingerprint() string
	// Unwrap returns the 32-byte data key; alg is wrapped_key.alg.
	Unwrap(alg string, wrapped []byte) ([]byte, error)
}

// Open verifies and decrypts an envelope (docs/formats.md 1.7, checks 9 to 13) and returns
// the plaintext: the 32-byte MasterKey, or a share's word indices (2 bytes each).
// expectedFingerprint (hex, optional) is the MasterKey fingerprint the service trusts
// (from the genesis manifest or the paper KCV): an envelope of another key is refused.
// A transitional envelope (version 2) is refused at or after its expiry, by the clock.
func Open(env *Envelope, key Unwrapper, expectedFingerprint string) ([]byte, error) {
	return OpenAt(env, key, expectedFingerprint, time.Now())
}

// OpenAt is Open with the transition expiry judged at time now.
func OpenAt(env *Envelope, key Unwrapper, expectedFingerprint string, now time.Time) ([]byte, error) {
	if expectedFingerprint != "" && expectedFingerprint != hex.EncodeToString(env.Header.MasterKeyFingerprint) {
		return nil, errors.New("the envelope belongs to another MasterKey than the one expected")
	}
	if err := CheckExpiry(env, now); err != nil {
		return nil, err
	}
	if err := VerifySignature(env); err != nil {
		return nil, err
	}
	if key.Fingerprint() != env.Header.Recipient.Fingerprint {
		return nil, errors.New("the envelope is sealed to another recipient than this key")
	}
	dataKey, err := key.Unwrap(env.Alg, env.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("unwrapping the data key failed: %v", err)
	}
	defer wipe(dataKey)
	if len(dataKey) != DataKeyLen {
		return nil, fmt.Errorf("the data key is %d bytes, expected 32", len(dataKey))
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, env.Nonce, env.Ciphertext, env.Header.Raw)
	if err != nil {
		return nil, errors.New("AES-GCM authentication failed: header, nonce, ciphertext or tag altered")
	}
	if len(plain) != env.Header.PayloadLength {
		wipe(plain)
		return nil, errors.New("payload length differs from the header's")
	}
	switch env.Header.Kind {
	case "masterkey":
		fp, err := DeriveFingerprint(plain)
		if err != nil || subtle.ConstantTimeCompare(fp, env.Header.MasterKeyFingerprint) != 1 {
			wipe(plain)
			return nil, errors.New("the decrypted key's fingerprint differs from the header's")
		}
	case "shard":
		for i := 0; i < len(plain); i += 2 {
			if binary.BigEndian.Uint16(plain[i:]) >= 1024 {
				wipe(plain)
				return nil, errors.New("a share word index is not below 1024")
			}
		}
	}
	return plain, nil
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
