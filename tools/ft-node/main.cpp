// ft-node -- one node of a libft cluster, with the stock entity types
// `counter` and `kv`. Build your own node with your own types the same way:
// fill an `ft::entity_types` and call `ft::node_main`.

#include "ft/cluster.hpp"

int main(int argc, char** argv) {
  ft::entity_types types;
  ft::add_stock_entity_types(types);
  return ft::node_main(argc, argv, std::move(types));
}
