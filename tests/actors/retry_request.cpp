#include "actors/fixture.hpp"
