// ft-demo-node -- a cluster node with the task queue's entity types next to
// the stock ones: the way to build a node with your own types (fill an
// `ft::entity_types`, call `ft::node_main`). ft-launch starts it with
// `--ft-node PATH`; `./tools/ft demo` does that for you.

#include "ft/cluster.hpp"

#include "task_queue.hpp"

int main(int argc, char** argv) {
  ft::entity_types types;
  ft::add_stock_entity_types(types);
  task_queue::add_types(types);
  return ft::node_main(argc, argv, std::move(types));
}
