"""Demo sagas from the seed scenarios, instrumented with the decorator, with fault injection."""
