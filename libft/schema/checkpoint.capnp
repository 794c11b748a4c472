@0xf1672dfc8c6cbc62;

# The payload of a checkpointed actor's snapshot (`ft/checkpoint.hpp`): the
# envelope (`snapshot.capnp`) carries this struct's bytes as its opaque
# `payload`, so the store, `ftctl` and replication never need to know it.
#
# Versioning rules as in `snapshot.capnp`: never renumber, retype or remove
# a field; add new fields at the end with the next ordinal. The state's own
# format is versioned separately, by the envelope's `schemaVersion`.
#
# The generated C++ types are private to libft: actors reach this format
# only through `ft::detail::encode_checkpoint_payload` and
# `ft::detail::decode_checkpoint_payload`.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ft::schema");

struct CheckpointPayload {
  state @0 :Data;
  # The actor's state as its `ft::state_codec` encoded it (CAF's binary
  # serializer, a Cap'n Proto message of the user's own schema, ...).

  appliedIds @1 :List(Text);
  # The dedupe window: the ids of the messages (`ft::with_message_id`) whose
  # effects `state` includes, oldest first. Stored with the state it
  # describes, so after a restore a replayed message is recognised exactly
  # when its effect was restored too.

  handled @2 :UInt64;
  # Messages the actor handled over all its incarnations up to this
  # snapshot: for operators (`ftctl`) and tests, never for decisions.
}
