/* An ELF relocatable object without a .modinfo section. */
int not_a_module(void) { return 42; }
