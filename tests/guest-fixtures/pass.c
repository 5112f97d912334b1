// The smallest passing guest test.
#include <stdio.h>

int main(void)
{
	printf("TAP version 13\n1..1\nok 1 passes\n");
	return 0;
}
