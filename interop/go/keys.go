package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // RSA-OAEP with SHA-1: HSMs without OAEP-SHA-256 (docs/formats.md 1.3)
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"
)

// RSAKey unwraps RSA-OAEP-256 and RSA-OAEP (SHA-1) data keys with a private key file.
type RSAKey struct{ Key *rsa.PrivateKey }

// Fingerprint is SHA-256 of the DER SubjectPublicKeyInfo.
func (k RSAKey) Fingerprint() string {
	der, err := x509.MarshalPKIXPublicKey(&k.Key.PublicKey)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Unwrap is RSAES-OAEP with the same hash for OAEP and MGF1 and an empty label.
func (k RSAKey) Unwrap(alg string, wrapped []byte) ([]byte, error) {
	var h hash.Hash
	switch alg {
	case AlgRSAOAEP256:
		h = sha256.New()
	case AlgRSAOAEP:
		h = sha1.New()
	default:
		return nil, fmt.Errorf("an RSA key cannot open %s", alg)
	}
	if len(wrapped) != k.Key.Size() {
		return nil, errors.New("the wrapped data key's length is not this key's modulus length")
	}
	return rsa.DecryptOAEP(h, rand.Reader, k.Key, wrapped, nil)
}

// AgeKey unwraps age-X25519 (an age identity file) or age-ssh-ed25519 (an OpenSSH key).
type AgeKey struct {
	identity    age.Identity
	fingerprint string
	alg         string
}

// Fingerprint is SHA-256 of the ASCII recipient: "age1..." or "ssh-ed25519 <base64>".
func (k AgeKey) Fingerprint() string { return k.fingerprint }

// Unwrap decrypts the binary age file; its payload is the 32-byte data key.
func (k AgeKey) Unwrap(alg string, wrapped []byte) ([]byte, error) {
	if alg != k.alg {
		return nil, fmt.Errorf("this key opens %s, not %s", k.alg, alg)
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), k.identity)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, DataKeyLen+1))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LoadKey reads a private key file for the given wrapped_key.alg: a PKCS#8 or PKCS#1 PEM
// RSA key, an age identity file (AGE-SECRET-KEY-1...), or an OpenSSH Ed25519 private key.
func LoadKey(alg string, data []byte) (Unwrapper, error) {
	switch alg {
	case AlgRSAOAEP256, AlgRSAOAEP:
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, errors.New("not a PEM private key")
		}
		var key interface{}
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		if err != nil {
			return nil, err
		}
		rk, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA private key")
		}
		return RSAKey{rk}, nil
	case AlgAgeX25519:
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		if len(ids) != 1 {
			return nil, errors.New("the identity file must hold exactly one key")
		}
		x, ok := ids[0].(*age.X25519Identity)
		if !ok {
			return nil, errors.New("not an age X25519 identity")
		}
		sum := sha256.Sum256([]byte(x.Recipient().String()))
		return AgeKey{x, hex.EncodeToString(sum[:]), alg}, nil
	case AlgAgeSSH:
		raw, err := ssh.ParseRawPrivateKey(data)
		if err != nil {
			return nil, err
		}
		var pub ed25519.PublicKey
		switch k := raw.(type) {
		case *ed25519.PrivateKey:
			pub = k.Public().(ed25519.PublicKey)
		case ed25519.PrivateKey:
			pub = k.Public().(ed25519.PublicKey)
		default:
			return nil, errors.New("not an OpenSSH Ed25519 private key")
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, err
		}
		id, err := agessh.ParseIdentity(data)
		if err != nil {
			return nil, err
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub)))
		sum := sha256.Sum256([]byte(line))
		return AgeKey{id, hex.EncodeToString(sum[:]), alg}, nil
	}
	return nil, fmt.Errorf("unknown wrap algorithm %q", alg)
}
