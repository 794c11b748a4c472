@0xb3c5a0f1d2e4f601;

# Snapshots on disk and on the wire.
#
# `SnapshotEnvelope` is the on-disk format of the snapshot store (one LMDB
# value per snapshot, encoded unpacked as a flat array by
# `ft::encode_snapshot`). The other structs are the messages that will carry
# snapshots between nodes (replication and catch-up after a restart or a
# partition).
#
# Versioning rules (these bytes outlive the binaries that wrote them):
# - never renumber, retype or remove a field; add new fields only at the end
#   with the next ordinal, so old readers skip them and new readers see
#   defaults in old data;
# - a field that is no longer used keeps its ordinal (rename it `obsoleteX`);
# - the envelope's checksum covers the fields listed in
#   `ft::snapshot_checksum` (libft/src/snapshot.cpp); a field added later is
#   not covered unless that layout changes too, which is an on-disk format
#   change.
#
# The generated C++ types are private to libft (never in public headers):
# users see `ft::snapshot_envelope`.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ft::schema");

struct SnapshotEnvelope {
  # One snapshot of one actor's state: a self-describing header, so any node,
  # any version of libft and `ftctl` can list and route snapshots without
  # knowing the actor's state format, and the opaque state itself.

  key @0 :Text;
  # The entity's key, unique per store, e.g. `counter/42`. Never empty, no
  # NUL bytes (the store uses it in LMDB keys).

  actorType @1 :Text;
  # The actor type that wrote the snapshot, e.g. `counter`: tells a reader
  # how to decode the payload. Absent means empty.

  schemaVersion @2 :UInt32;
  # The version of the payload's format, so a reader detects (and may
  # upgrade) state written by an older version of the actor type.

  sequence @3 :UInt64;
  # Rises with every snapshot of a key; the store rejects a write that does
  # not raise it, so replays and replication are idempotent.

  timestampMs @4 :Int64;
  # Wall-clock time of the checkpoint, milliseconds since the Unix epoch:
  # for operators and retention, never for ordering (that is `sequence`).

  nodeId @5 :Text;
  # The node that took the snapshot; absent/empty on a single node.

  checksum @6 :UInt32;
  # CRC-32C over the other fields in a canonical layout (not over these
  # Cap'n Proto bytes, whose layout may change as fields are added): detects
  # corruption on disk and in transit.

  payload @7 :Data;
  # The actor's state in the actor type's own format (Cap'n Proto, CAF's
  # binary serializer, ...). Last in the struct's pointer section so a
  # header-only reader never has to touch it.
}

struct ReplicateSnapshot {
  # Owner -> replica: store this snapshot. Sent after the owner's own store
  # committed it.

  envelope @0 :Data;
  # The encoded `SnapshotEnvelope`, byte for byte as the owner stored it
  # (not a nested struct): the replica verifies and stores these bytes as
  # they are, without re-encoding, so the checksum covers the snapshot end
  # to end and a replica's store holds exactly what the owner's holds.

  origin @1 :Text;
  # The node id of the sender (the key's owner when it sent this).

  epoch @2 :UInt64;
  # The sender's ownership epoch for the key (raised on every failover):
  # a replica rejects snapshots from an epoch older than the newest it has
  # seen for the key, which fences an old owner that does not yet know it
  # lost ownership (e.g. after a partition heals).
}

struct ReplicateAck {
  # Replica -> owner: the outcome of one `ReplicateSnapshot`, so the owner
  # can count replicas (write quorum) and retry the ones that failed.

  key @0 :Text;
  sequence @1 :UInt64;
  # Which snapshot this answers (key and sequence identify it uniquely):
  # acks may arrive out of order and after retries.

  node @2 :Text;
  # The replica that answers.

  errorCode @3 :UInt8;
  # 0 (`ft::errc::none`) when stored; else the `ft::errc` value, e.g.
  # `stale_sequence` (the replica already has this or a newer snapshot:
  # counts as success for idempotent retries), `checksum_mismatch` (damaged
  # in transit: resend), `store_full`.

  errorText @4 :Text;
  # Human-readable context of the error (`ft::render`), for logs only:
  # decisions use `errorCode`.

  epoch @5 :UInt64;
  # The newest epoch the replica has seen for the key: when above the
  # sender's, the sender learns it is no longer the owner.
}

struct KeySequence {
  # One key and the newest sequence a node holds for it.
  key @0 :Text;
  sequence @1 :UInt64;
}

struct CatchUpRequest {
  # A node that (re)joins or healed from a partition -> a peer: send me the
  # snapshots I am missing. Listing what the node has (instead of shipping
  # everything) keeps catch-up proportional to what was missed.

  node @0 :Text;
  # The requesting node.

  have @1 :List(KeySequence);
  # The newest sequence per key the requester holds; the peer sends every
  # key it has with a higher sequence and every key missing here.

  maxBatchBytes @2 :UInt64;
  # Upper bound on one `CatchUpBatch`'s envelope bytes (0 = the peer's
  # default): keeps single messages bounded when large snapshots are missed.
}

struct CatchUpBatch {
  # Peer -> requester: part of the answer to a `CatchUpRequest`.

  envelopes @0 :List(Data);
  # Encoded `SnapshotEnvelope`s, byte for byte as stored (see
  # `ReplicateSnapshot.envelope` for why bytes, not structs); the requester
  # writes them through its store, which rejects stale sequences, so
  # overlapping or repeated batches are harmless.

  more @1 :Bool;
  # Whether further batches follow: the answer is split so no message
  # exceeds `maxBatchBytes`; the requester is caught up after the batch
  # with `more = false`.

  origin @2 :Text;
  # The node that sends the batch.
}
