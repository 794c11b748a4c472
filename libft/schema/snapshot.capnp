@0xb3c5a0f1d2e4f601;
# stub: being written
struct SnapshotEnvelope {
  key @0 :Text;
}
