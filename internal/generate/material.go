package generate

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
)

// poolSize is how many users (keys) and certificates are made up front.
const poolSize = 64

// certBlobSize makes a certificate of about 1 KB once base64-encoded, the
// size of a real ssh-ed25519-cert-v01 with a few principals and extensions.
const certBlobSize = 760

// sshString appends s in the SSH wire format (uint32 length, bytes).
func sshString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// newPublicKey returns an ed25519 public key in authorized_keys format.
func newPublicKey(r *rand.ChaCha8, comment string) string {
	var seed [ed25519.SeedSize]byte
	_, _ = r.Read(seed[:])
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	blob := sshString(nil, []byte("ssh-ed25519"))
	blob = sshString(blob, pub)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " " + comment
}

// newCertificate returns a certificate-shaped string: the right type name,
// nonce and key, then random bytes standing for the signed fields.
func newCertificate(r *rand.ChaCha8) string {
	const typ = "ssh-ed25519-cert-v01@openssh.com"
	blob := sshString(make([]byte, 0, certBlobSize), []byte(typ))
	var nonce, key [32]byte
	_, _ = r.Read(nonce[:])
	_, _ = r.Read(key[:])
	blob = sshString(blob, nonce[:])
	blob = sshString(blob, key[:])
	rest := make([]byte, certBlobSize-len(blob))
	_, _ = r.Read(rest)
	blob = append(blob, rest...)
	return typ + " " + base64.StdEncoding.EncodeToString(blob)
}

// names are the requestors' display names.
var names = [...]string{
	"Alice Martin", "Bob Nguyen", "Carla Rossi", "David Okafor", "Elena Petrova",
	"Farid Haddad", "Grace Kim", "Hugo Lefebvre", "Ingrid Larsen", "Jamal Carter",
	"Keiko Tanaka", "Liam O'Brien", "Maria Garcia", "Nils Andersson", "Olivia Brown",
	"Pavel Novak", "Quinn Taylor", "Rosa Mendes", "Sanjay Patel", "Tara Walsh",
	"Umar Farouk", "Vera Ivanova", "Wei Zhang", "Ximena Torres", "Yusuf Demir",
	"Zoe Fischer", "Ana Silva", "Ben Cohen", "Chloe Dubois", "Diego Ramirez",
}

// hosts are the machines users request certificates from.
var hosts = [...]string{"laptop", "build-07", "ci-runner", "bastion", "dev-vm", "workstation"}
