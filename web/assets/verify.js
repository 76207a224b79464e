// Verification of a record, its inclusion proof and the node's signed
// checkpoint, done in the browser with WebCrypto. The node's key comes
// from the same node, so a pass shows the answers agree with each other
// and with that key; the reader ties the key to the node by comparing its
// fingerprint with the one the operator published.
//
// Everything here is a pure function of its arguments (no DOM, no fetch):
// the explorer calls verifyRecord with what the API returned, and the
// browser tests call the smaller functions with good and tampered inputs.
// The formats are those of docs/FORMAT.md: record id (§4), record signature
// (§6), the RFC 6962 Merkle tree (§9) and the signed-note checkpoint (§10).

const enc = new TextEncoder();

// cryptoAvailable says whether WebCrypto can be used here: browsers offer
// crypto.subtle only in secure contexts (HTTPS, or http://localhost and
// 127.0.0.1).
export function cryptoAvailable() {
  return Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

export function unavailableReason() {
  if (cryptoAvailable()) return '';
  return 'This browser offers no WebCrypto here: pages served over plain HTTP from an address other than ' +
    'localhost or 127.0.0.1 are not a secure context. Open the panel through an SSH tunnel to 127.0.0.1 ' +
    'or behind HTTPS to verify in the page.';
}

// ---- bytes ----

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new Error('not hex: ' + String(hex).slice(0, 20));
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function base64ToBytes(s) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error('not base64: ' + s.slice(0, 20));
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function bytesToBase64(b) {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// ---- hashes and signatures ----

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

// leafHash is RFC 6962's leaf hash of a record id: SHA-256(0x00 || id).
export function leafHash(id) {
  return sha256(concat(Uint8Array.of(0), id));
}

// nodeHash is RFC 6962's interior node hash: SHA-256(0x01 || l || r).
export function nodeHash(l, r) {
  return sha256(concat(Uint8Array.of(1), l, r));
}

// ed25519Verify checks an Ed25519 signature; it throws when the browser's
// WebCrypto lacks Ed25519.
export async function ed25519Verify(publicKey, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    if (e && e.name === 'NotSupportedError') throw new Error('this browser\'s WebCrypto has no Ed25519');
    throw new Error('bad Ed25519 public key: ' + (e && e.message ? e.message : e));
  }
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message);
}

// ---- Merkle tree (RFC 6962, RFC 9162 §2.1.3.2) ----

// rootFromInclusionProof computes the root an audit path leads to from the
// leaf hash at index in a tree of size leaves. It throws when the path has
// the wrong length for index and size.
export async function rootFromInclusionProof(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn < 0n || fn > sn) throw new Error(`index ${index} is outside a tree of ${size}`);
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) throw new Error('a proof hash is not 32 bytes');
    if (sn === 0n) throw new Error('the proof is too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the proof is too short');
  return r;
}

// verifyInclusion reports whether proof shows leaf at index in the tree of
// size leaves with the given root.
export async function verifyInclusion(index, size, leaf, proof, root) {
  try {
    return equalBytes(await rootFromInclusionProof(index, size, leaf, proof), root);
  } catch {
    return false;
  }
}

// ---- checkpoints (signed notes) ----

// keyHash is the signed-note key hash of an Ed25519 key:
// the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
export async function keyHash(name, publicKey) {
  const h = await sha256(concat(enc.encode(name + '\n'), Uint8Array.of(1), publicKey));
  return h.slice(0, 4);
}

// parseCheckpoint splits a signed note into its body and signature lines
// and reads the checkpoint fields. It throws on a malformed note.
export function parseCheckpoint(note) {
  if (typeof note !== 'string' || !note.endsWith('\n')) throw new Error('the checkpoint does not end in a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint has no signature block');
  const body = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split('\n');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 5) throw new Error(`the checkpoint has ${lines.length} lines, want at least 5`);
  const m = /^pyvnode\/(.+)\/([0-9a-f]{64})$/.exec(lines[0]);
  if (!m) throw new Error(`origin line "${lines[0]}" is not pyvnode/<network>/<node id>`);
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error(`size "${lines[1]}" is not a decimal number`);
  const root = base64ToBytes(lines[2]);
  if (root.length !== 32) throw new Error('the root is not 32 bytes');
  if (!/^link [0-9a-f]{64}$/.test(lines[3])) throw new Error('line 4 is not "link <hex>"');
  if (!/^time \S+$/.test(lines[4])) throw new Error('line 5 is not "time <RFC 3339>"');
  const signatures = sigLines.map((l) => {
    const s = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(l);
    if (!s) throw new Error(`signature line "${l.slice(0, 40)}" is malformed`);
    const raw = base64ToBytes(s[2]);
    if (raw.length < 5) throw new Error('a signature is too short');
    return { name: s[1], keyHash: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return {
    body,
    origin: lines[0],
    network: m[1],
    node: m[2],
    size: BigInt(lines[1]),
    root,
    link: lines[3].slice(5),
    time: lines[4].slice(5),
    signatures,
  };
}

// verifyCheckpoint checks a signed checkpoint against the node's public
// key: the origin names that key, a signature line carries its key hash,
// and the Ed25519 signature over the body verifies. It answers
// {ok, detail, checkpoint}; checkpoint is set whenever the note parsed.
export async function verifyCheckpoint(note, publicKey) {
  let cp;
  try {
    cp = parseCheckpoint(note);
  } catch (e) {
    return { ok: false, detail: e.message };
  }
  if (publicKey.length !== 32) return { ok: false, detail: 'the public key is not 32 bytes', checkpoint: cp };
  if (cp.node !== bytesToHex(publicKey)) {
    return { ok: false, detail: `the checkpoint names node ${cp.node.slice(0, 12)}…, not this node's key`, checkpoint: cp };
  }
  const kh = await keyHash(cp.origin, publicKey);
  const sig = cp.signatures.find((s) => s.name === cp.origin && equalBytes(s.keyHash, kh));
  if (!sig) return { ok: false, detail: 'no signature line with this key\'s name and key hash', checkpoint: cp };
  if (sig.signature.length !== 64) return { ok: false, detail: 'the signature is not 64 bytes', checkpoint: cp };
  const ok = await ed25519Verify(publicKey, sig.signature, enc.encode(cp.body));
  return { ok, detail: ok ? `signed by ${cp.origin}` : 'the Ed25519 signature does not verify', checkpoint: cp };
}

// ---- records ----

// recordSignatureMessage is what a record's origin signs (FORMAT.md §6).
export function recordSignatureMessage(network, id) {
  return concat(enc.encode('pyvnode record signature v1\n' + network + '\n'), id);
}

// decodeCBOR decodes the CBOR subset pyvnode records use (unsigned and
// negative integers as BigInt, byte and text strings, arrays, maps as
// arrays of [key, value] pairs, booleans). It refuses trailing bytes and
// indefinite lengths.
export function decodeCBOR(bytes) {
  let i = 0;
  const byte = () => {
    if (i >= bytes.length) throw new Error('CBOR ends early');
    return bytes[i++];
  };
  const arg = (ai) => {
    if (ai < 24) return BigInt(ai);
    const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[ai];
    if (!n) throw new Error('CBOR: unsupported length encoding');
    let v = 0n;
    for (let k = 0; k < n; k++) v = (v << 8n) | BigInt(byte());
    return v;
  };
  const len = (ai) => {
    const v = arg(ai);
    // Every item takes at least a byte, so no count exceeds what is left.
    if (v > BigInt(bytes.length - i)) throw new Error('CBOR: length beyond the input');
    return Number(v);
  };
  const item = (depth) => {
    if (depth > 32) throw new Error('CBOR nests too deep');
    const b = byte();
    const mt = b >> 5;
    const ai = b & 31;
    switch (mt) {
      case 0:
        return arg(ai);
      case 1:
        return -1n - arg(ai);
      case 2:
      case 3: {
        const n = len(ai);
        if (i + n > bytes.length) throw new Error('CBOR ends early');
        const s = bytes.slice(i, i + n);
        i += n;
        return mt === 2 ? s : new TextDecoder('utf-8', { fatal: true }).decode(s);
      }
      case 4: {
        const n = len(ai);
        const a = [];
        for (let k = 0; k < n; k++) a.push(item(depth + 1));
        return a;
      }
      case 5: {
        const n = len(ai);
        const pairs = [];
        for (let k = 0; k < n; k++) pairs.push([item(depth + 1), item(depth + 1)]);
        return { map: pairs };
      }
      case 7:
        if (ai === 20) return false;
        if (ai === 21) return true;
        throw new Error('CBOR: unsupported simple value');
      default:
        throw new Error('CBOR: unsupported major type ' + mt);
    }
  };
  const v = item(0);
  if (i !== bytes.length) throw new Error('CBOR: trailing bytes');
  return v;
}

// payloadToJSON turns a decoded CBOR payload into its JSON form
// (FORMAT.md §3): byte strings become {"$bytes": base64}. Integers stay
// BigInt so that nothing is rounded.
export function payloadToJSON(v) {
  if (typeof v === 'bigint' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return { $bytes: bytesToBase64(v) };
  if (Array.isArray(v)) return v.map(payloadToJSON);
  if (v && v.map) {
    const o = {};
    for (const [k, x] of v.map) {
      if (typeof k !== 'string') throw new Error('a payload map key is not text');
      // defineProperty, not o[k] =: a key "__proto__" must be a field like
      // any other, not change the object's prototype (and vanish).
      Object.defineProperty(o, k, { value: payloadToJSON(x), enumerable: true, writable: true, configurable: true });
    }
    return o;
  }
  throw new Error('unexpected payload value');
}

// decodeRecord reads the seven fields of a record map (FORMAT.md §3).
export function decodeRecord(bytes) {
  const v = decodeCBOR(bytes);
  if (!v || !v.map || v.map.length !== 7) throw new Error('the record is not a map of seven entries');
  const f = new Map(v.map.map(([k, x]) => [typeof k === 'bigint' ? Number(k) : k, x]));
  for (let k = 1; k <= 7; k++) if (!f.has(k)) throw new Error(`the record lacks key ${k}`);
  const origin = f.get(4);
  if (!(origin instanceof Uint8Array) || origin.length !== 32) throw new Error('the origin is not 32 bytes');
  return {
    version: f.get(1),
    kind: f.get(2),
    payload: payloadToJSON(f.get(3)),
    origin: bytesToHex(origin),
    author: f.get(5),
    created: f.get(6),
    nonce: f.get(7),
  };
}

// sameJSON compares a payload decoded from the record bytes (integers as
// BigInt) with the one the API sent (integers as JSON numbers, which a
// browser reads as doubles: compared after the same rounding).
export function sameJSON(exact, shown) {
  if (typeof exact === 'bigint') {
    if (typeof shown === 'bigint') return exact === shown;
    return typeof shown === 'number' && Number(exact) === shown;
  }
  if (typeof exact !== 'object' || exact === null) return exact === shown;
  if (Array.isArray(exact)) {
    return Array.isArray(shown) && exact.length === shown.length && exact.every((x, k) => sameJSON(x, shown[k]));
  }
  if (typeof shown !== 'object' || shown === null || Array.isArray(shown)) return false;
  const ka = Object.keys(exact);
  const kb = Object.keys(shown);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(shown, k) && sameJSON(exact[k], shown[k]));
}

// compareFields lists the fields the API shows that differ from the ones
// in the record's bytes.
export function compareFields(decoded, rec) {
  const bad = [];
  const num = (x, y) => (typeof y === 'bigint' ? x === y : Number(x) === y);
  if (!num(decoded.version, rec.version)) bad.push('version');
  if (decoded.kind !== rec.kind) bad.push('kind');
  if (decoded.author !== (rec.author ?? '')) bad.push('author');
  if (decoded.origin !== rec.origin) bad.push('origin');
  if (!num(decoded.created, rec.created)) bad.push('created');
  if (!num(decoded.nonce, rec.nonce)) bad.push('nonce');
  if (!sameJSON(decoded.payload, rec.payload)) bad.push('payload');
  return bad;
}

// ---- everything together ----

// verifyRecord runs every check on a record as the explorer shows it:
//
//	record      an API record (id, record hex, signature, the decoded fields)
//	proof       /api/proof/inclusion's answer (index, size, root, leaf_hash, proof)
//	checkpoint  a signed note stating the tree the proof is for
//	publicKey   the node's public key (hex), from /api/checkpoint
//
// It returns {ok, checks: [{key, name, ok, detail}]} and never throws: a
// check that cannot be made fails with the reason.
export async function verifyRecord({ record, proof, checkpoint, publicKey }) {
  const checks = [];
  const add = (key, name, ok, detail) => checks.push({ key, name, ok: Boolean(ok), detail });
  const attempt = async (key, name, f) => {
    try {
      const [ok, detail] = await f();
      add(key, name, ok, detail);
    } catch (e) {
      add(key, name, false, e && e.message ? e.message : String(e));
    }
  };
  if (!cryptoAvailable()) {
    add('crypto', 'WebCrypto available', false, unavailableReason());
    return { ok: false, checks };
  }
  let id = null;
  let bytes = null;
  let decoded = null;
  let cp = null;
  await attempt('id', 'Record id is SHA-256 of the record bytes', async () => {
    id = hexToBytes(record.id);
    bytes = hexToBytes(record.record);
    const h = await sha256(bytes);
    return equalBytes(h, id)
      ? [true, `SHA-256 of ${bytes.length} bytes = ${record.id}`]
      : [false, `SHA-256 of the bytes is ${bytesToHex(h)}, the id is ${record.id}`];
  });
  await attempt('fields', 'Shown fields are those in the record bytes', async () => {
    decoded = decodeRecord(bytes);
    const bad = compareFields(decoded, record);
    return bad.length === 0 ? [true, 'kind, author, origin, created, nonce and payload match'] : [false, 'differ: ' + bad.join(', ')];
  });
  await attempt('cp', 'Checkpoint signed by the node', async () => {
    const r = await verifyCheckpoint(checkpoint, hexToBytes(publicKey));
    cp = r.checkpoint ?? null;
    return [r.ok, r.detail];
  });
  await attempt('signature', 'Record signed by its origin', async () => {
    if (!decoded) throw new Error('the record bytes did not decode');
    if (!cp) throw new Error('no network name: the checkpoint did not parse');
    const sig = hexToBytes(record.signature);
    if (sig.length !== 64) throw new Error('the signature is not 64 bytes');
    const ok = await ed25519Verify(hexToBytes(decoded.origin), sig, recordSignatureMessage(cp.network, id));
    return [ok, ok ? `Ed25519 by origin ${decoded.origin.slice(0, 16)}… on network ${cp.network}` : 'the signature does not verify'];
  });
  await attempt('inclusion', 'Inclusion proof leads to the root', async () => {
    const leaf = await leafHash(id);
    if (proof.leaf_hash && proof.leaf_hash !== bytesToHex(leaf)) {
      return [false, 'the proof\'s leaf hash is not SHA-256(0x00 || id)'];
    }
    if (proof.id && proof.id !== record.id) return [false, 'the proof is for another record'];
    if (BigInt(proof.index) !== BigInt(record.height)) return [false, `the proof is for index ${proof.index}, the record is at ${record.height}`];
    const root = await rootFromInclusionProof(proof.index, proof.size, leaf, proof.proof.map(hexToBytes));
    return equalBytes(root, hexToBytes(proof.root))
      ? [true, `${proof.proof.length} hashes from leaf ${proof.index} to the root of ${proof.size}`]
      : [false, `the path leads to ${bytesToHex(root).slice(0, 16)}…, not the root ${proof.root.slice(0, 16)}…`];
  });
  await attempt('root', 'Proof root and size are the checkpoint\'s', async () => {
    if (!cp) throw new Error('the checkpoint did not parse');
    const sameSize = cp.size === BigInt(proof.size);
    const sameRoot = bytesToHex(cp.root) === proof.root;
    if (sameSize && sameRoot) return [true, `size ${cp.size}, root ${proof.root.slice(0, 16)}…`];
    return [false, sameSize ? 'the roots differ' : `the checkpoint states size ${cp.size}, the proof ${proof.size}`];
  });
  return { ok: checks.every((c) => c.ok), checks };
}
