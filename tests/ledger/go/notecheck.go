// notecheck: verifies vitalog ledger artefacts with outside implementations.
//
// Signed notes are opened with golang.org/x/mod/sumdb/note, the reference
// implementation of C2SP signed-note. Inclusion proofs are checked with the
// RFC 9162 section 2.1.3.2 algorithm, implemented here independently.
//
// usage:
//
//	notecheck [-checkpoint] VKEY NOTE
//	    verify NOTE (a file) against VKEY (a verifier key string, or a file
//	    holding one); print the note text and exit 0 if it verifies.
//	    With -checkpoint, the text must also be a strict C2SP checkpoint
//	    (origin, size, base64 32-byte root, no extension lines) whose origin
//	    equals the key name.
//	notecheck -consistency PROOF.json -old OLDNOTE VKEY NOTE
//	    verify both checkpoints (as -checkpoint), then that NOTE's tree extends
//	    OLDNOTE's, with the proof {"first":M,"second":N,"hashes":[base64...]}
//	    (RFC 9162 section 2.1.4.2).
//	notecheck -vectors DIR
//	    self-test of the inclusion verifier on RFC 9162 vectors
//	    (DIR/inclusion/*/*.json from transparency-dev/merkle).
//	notecheck -inclusion ENTRYLINE -proof PROOF.json [-index I] VKEY NOTE
//	    as -checkpoint, then verify that the entry line (file ENTRYLINE,
//	    trailing newline stripped) is at index I of the checkpointed tree, using
//	    the proof {"index":I,"size":S,"hashes":[base64...]}; S must equal the
//	    checkpoint's size.
//
// Build offline, GOPATH mode (Debian golang-golang-x-mod-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o notecheck notecheck.go
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

type checkpoint struct {
	origin string
	size   uint64
	root   []byte
}

// parseCheckpoint parses a C2SP tlog-checkpoint note text strictly.
func parseCheckpoint(text string) (*checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("checkpoint text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 {
		return nil, fmt.Errorf("checkpoint has %d lines, want exactly 3 (origin, size, root; no extensions)", len(lines))
	}
	origin, sizeStr, rootStr := lines[0], lines[1], lines[2]
	if origin == "" {
		return nil, errors.New("empty origin")
	}
	if sizeStr == "" || (len(sizeStr) > 1 && sizeStr[0] == '0') {
		return nil, fmt.Errorf("size %q is not a canonical decimal", sizeStr)
	}
	for _, c := range sizeStr {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("size %q is not a decimal", sizeStr)
		}
	}
	size, err := strconv.ParseUint(sizeStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("size %q: %v", sizeStr, err)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(rootStr)
	if err != nil {
		return nil, fmt.Errorf("root %q: %v", rootStr, err)
	}
	if len(root) != 32 {
		return nil, fmt.Errorf("root is %d bytes, want 32", len(root))
	}
	if base64.StdEncoding.EncodeToString(root) != rootStr {
		return nil, fmt.Errorf("root %q is not canonical base64", rootStr)
	}
	return &checkpoint{origin, size, root}, nil
}

func hashChildren(l, r []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(l)
	h.Write(r)
	return h.Sum(nil)
}

func leafHash(line []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(line)
	return h.Sum(nil)
}

// verifyInclusion is RFC 9162 section 2.1.3.2.
func verifyInclusion(index, size uint64, leaf []byte, path [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("index %d >= size %d", index, size)
	}
	if len(leaf) != 32 || len(root) != 32 {
		return fmt.Errorf("leaf hash or root is not 32 bytes")
	}
	fn, sn := index, size-1
	r := leaf
	for i, p := range path {
		if len(p) != 32 {
			return fmt.Errorf("proof hash %d is %d bytes", i, len(p))
		}
		if sn == 0 {
			return fmt.Errorf("proof too long (%d hashes)", len(path))
		}
		if fn&1 == 1 || fn == sn {
			r = hashChildren(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = hashChildren(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("proof too short (%d hashes)", len(path))
	}
	if !bytes.Equal(r, root) {
		return fmt.Errorf("computed root %s != checkpoint root %s",
			base64.StdEncoding.EncodeToString(r), base64.StdEncoding.EncodeToString(root))
	}
	return nil
}

// verifyConsistency is RFC 9162 section 2.1.4.2, with the edge cases of the
// transparency-dev vectors: equal sizes need an empty proof and equal roots;
// a proof from the empty tree is refused.
func verifyConsistency(first, second uint64, root1, root2 []byte, path [][]byte) error {
	if first > second {
		return fmt.Errorf("first %d > second %d", first, second)
	}
	for i, p := range path {
		if len(p) != 32 {
			return fmt.Errorf("proof hash %d is %d bytes", i, len(p))
		}
	}
	if first == 0 {
		// every tree extends the empty one: nothing to prove (an error, as in
		// the transparency-dev vectors)
		return fmt.Errorf("consistency with the empty tree is meaningless")
	}
	if first == second {
		if len(path) != 0 {
			return fmt.Errorf("proof between equal sizes must be empty")
		}
		if !bytes.Equal(root1, root2) {
			return fmt.Errorf("equal sizes, different roots")
		}
		return nil
	}
	if len(path) == 0 {
		return fmt.Errorf("empty proof")
	}
	if len(root1) != 32 || len(root2) != 32 {
		return fmt.Errorf("a root is not 32 bytes")
	}
	if first&(first-1) == 0 { // exact power of two
		path = append([][]byte{root1}, path...)
	}
	fn, sn := first-1, second-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("proof too long")
		}
		if fn&1 == 1 || fn == sn {
			fr = hashChildren(c, fr)
			sr = hashChildren(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = hashChildren(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("proof too short")
	}
	if !bytes.Equal(fr, root1) {
		return fmt.Errorf("computed first root %s != %s",
			base64.StdEncoding.EncodeToString(fr), base64.StdEncoding.EncodeToString(root1))
	}
	if !bytes.Equal(sr, root2) {
		return fmt.Errorf("computed second root %s != %s",
			base64.StdEncoding.EncodeToString(sr), base64.StdEncoding.EncodeToString(root2))
	}
	return nil
}

// readKey takes a verifier key string, or the name of a file holding one.
func readKey(arg string) (string, error) {
	if st, err := os.Stat(arg); err == nil && st.Mode().IsRegular() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if strings.Count(arg, "+") < 2 {
		return "", fmt.Errorf("%q is neither a file nor a verifier key", arg)
	}
	return strings.TrimSpace(arg), nil
}

// runVectors checks verifyInclusion and verifyConsistency against the
// transparency-dev/merkle vectors (DIR/inclusion/*/*.json and
// DIR/consistency/*/*.json): they must accept exactly the files whose wantErr
// is false.
func runVectors(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "inclusion", "*", "*.json"))
	if len(files) == 0 {
		die("no vectors under %s/inclusion", dir)
	}
	bad := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			die("%v", err)
		}
		var tc struct {
			LeafIdx  uint64   `json:"leafIdx"`
			TreeSize uint64   `json:"treeSize"`
			Root     []byte   `json:"root"`
			LeafHash []byte   `json:"leafHash"`
			Proof    [][]byte `json:"proof"`
			WantErr  bool     `json:"wantErr"`
		}
		if err := json.Unmarshal(b, &tc); err != nil {
			die("%s: %v", f, err)
		}
		err = verifyInclusion(tc.LeafIdx, tc.TreeSize, tc.LeafHash, tc.Proof, tc.Root)
		if (err != nil) != tc.WantErr {
			bad++
			fmt.Fprintf(os.Stderr, "vector %s: wantErr=%v, got %v\n", f, tc.WantErr, err)
		}
	}
	cfiles, _ := filepath.Glob(filepath.Join(dir, "consistency", "*", "*.json"))
	for _, f := range cfiles {
		b, err := os.ReadFile(f)
		if err != nil {
			die("%v", err)
		}
		var tc struct {
			Size1   uint64   `json:"size1"`
			Size2   uint64   `json:"size2"`
			Root1   []byte   `json:"root1"`
			Root2   []byte   `json:"root2"`
			Proof   [][]byte `json:"proof"`
			WantErr bool     `json:"wantErr"`
		}
		if err := json.Unmarshal(b, &tc); err != nil {
			die("%s: %v", f, err)
		}
		err = verifyConsistency(tc.Size1, tc.Size2, tc.Root1, tc.Root2, tc.Proof)
		if (err != nil) != tc.WantErr {
			bad++
			fmt.Fprintf(os.Stderr, "vector %s: wantErr=%v, got %v\n", f, tc.WantErr, err)
		}
	}
	fmt.Printf("%d inclusion and %d consistency vectors, %d wrong\n", len(files), len(cfiles), bad)
	if bad > 0 {
		os.Exit(1)
	}
}

// checkConsistency verifies the earlier signed checkpoint OLD with the same
// key and the proof {"first","second","hashes"} that the tree of cp extends it.
func checkConsistency(v note.Verifier, cp *checkpoint, old, proofFile string) {
	if old == "" {
		die("-consistency needs -old")
	}
	msg, err := os.ReadFile(old)
	if err != nil {
		die("reading old note: %v", err)
	}
	on, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		die("old note does not verify: %v", err)
	}
	ocp, err := parseCheckpoint(on.Text)
	if err != nil {
		die("bad old checkpoint: %v", err)
	}
	if ocp.origin != cp.origin {
		die("old checkpoint origin %q differs from %q", ocp.origin, cp.origin)
	}
	pj, err := os.ReadFile(proofFile)
	if err != nil {
		die("reading proof: %v", err)
	}
	var proof struct {
		First  *uint64  `json:"first"`
		Second *uint64  `json:"second"`
		Hashes []string `json:"hashes"`
	}
	dec := json.NewDecoder(bytes.NewReader(pj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&proof); err != nil {
		die("bad consistency proof JSON: %v", err)
	}
	if proof.First == nil || proof.Second == nil || proof.Hashes == nil {
		die("consistency proof lacks first, second or hashes")
	}
	if *proof.First != ocp.size || *proof.Second != cp.size {
		die("proof is for sizes %d -> %d, checkpoints are %d -> %d",
			*proof.First, *proof.Second, ocp.size, cp.size)
	}
	path := make([][]byte, len(proof.Hashes))
	for i, h := range proof.Hashes {
		if path[i], err = base64.StdEncoding.Strict().DecodeString(h); err != nil {
			die("consistency proof hash %d: %v", i, err)
		}
	}
	if err := verifyConsistency(ocp.size, cp.size, ocp.root, cp.root, path); err != nil {
		die("consistency proof fails: %v", err)
	}
	fmt.Printf("consistency of size %d with size %d: OK\n", ocp.size, cp.size)
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "notecheck: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	asCheckpoint := flag.Bool("checkpoint", false, "parse the note text as a C2SP checkpoint")
	entryFile := flag.String("inclusion", "", "file holding the entry line to prove included")
	proofFile := flag.String("proof", "", "inclusion proof JSON file")
	index := flag.Int64("index", -1, "expected leaf index (default: the proof's index)")
	consProof := flag.String("consistency", "", "consistency proof JSON file (with -old)")
	oldNote := flag.String("old", "", "the earlier checkpoint (signed note file) for -consistency")
	vectors := flag.String("vectors", "", "run the RFC 9162 inclusion and consistency vectors under this directory and exit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: notecheck [-checkpoint] VKEY NOTE\n"+
			"       notecheck -inclusion ENTRYLINE -proof PROOF.json [-index I] VKEY NOTE\n"+
			"       notecheck -consistency PROOF.json -old OLDNOTE VKEY NOTE\n"+
			"       notecheck -vectors DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *vectors != "" {
		runVectors(*vectors)
		return
	}
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	vkey, err := readKey(flag.Arg(0))
	if err != nil {
		die("reading key: %v", err)
	}
	msg, err := os.ReadFile(flag.Arg(1))
	if err != nil {
		die("reading note: %v", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		die("bad verifier key %q: %v", vkey, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		die("note does not verify: %v", err)
	}
	fmt.Print(n.Text)
	if !*asCheckpoint && *entryFile == "" && *consProof == "" {
		return
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		die("bad checkpoint: %v", err)
	}
	if cp.origin != v.Name() {
		die("checkpoint origin %q differs from key name %q", cp.origin, v.Name())
	}
	if *consProof != "" {
		checkConsistency(v, cp, *oldNote, *consProof)
	}
	if *entryFile == "" {
		return
	}
	if *proofFile == "" {
		die("-inclusion needs -proof")
	}
	line, err := os.ReadFile(*entryFile)
	if err != nil {
		die("reading entry: %v", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	if bytes.IndexByte(line, '\n') >= 0 {
		die("entry file holds more than one line")
	}
	pj, err := os.ReadFile(*proofFile)
	if err != nil {
		die("reading proof: %v", err)
	}
	var proof struct {
		Index  *uint64  `json:"index"`
		Size   *uint64  `json:"size"`
		Hashes []string `json:"hashes"`
	}
	dec := json.NewDecoder(bytes.NewReader(pj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&proof); err != nil {
		die("bad proof JSON: %v", err)
	}
	if proof.Index == nil || proof.Size == nil || proof.Hashes == nil {
		die("proof lacks index, size or hashes")
	}
	if *index >= 0 && uint64(*index) != *proof.Index {
		die("proof is for index %d, want %d", *proof.Index, *index)
	}
	if *proof.Size != cp.size {
		die("proof is for size %d, checkpoint size is %d", *proof.Size, cp.size)
	}
	// The entry line must name the same index.
	var e struct {
		Index *uint64 `json:"index"`
	}
	if err := json.Unmarshal(line, &e); err != nil || e.Index == nil || *e.Index != *proof.Index {
		die("entry line does not carry index %d", *proof.Index)
	}
	path := make([][]byte, len(proof.Hashes))
	for i, h := range proof.Hashes {
		if path[i], err = base64.StdEncoding.Strict().DecodeString(h); err != nil {
			die("proof hash %d: %v", i, err)
		}
	}
	if err := verifyInclusion(*proof.Index, cp.size, leafHash(line), path, cp.root); err != nil {
		die("inclusion proof fails: %v", err)
	}
	fmt.Printf("inclusion of index %d in tree of size %d: OK\n", *proof.Index, cp.size)
}
