@0x98413894341bfd02;

# Test-only: the Cap'n Proto state of the checkpoint tests' counter
# (tests/actors/checkpoint.cpp, via ft/capnp_state.hpp).

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ft::test::schema");

struct CounterState {
  value @0 :Int64;
  history @1 :List(Text);
}
