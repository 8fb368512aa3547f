"""The publisher's partitioning agrees with Kafka's default partitioner."""

import random

from aiokafka.partitioner import DefaultPartitioner

from services.ingest.publisher import partition_index


def test_keys_land_on_the_partition_kafkas_default_partitioner_chooses() -> None:
    partitioner = DefaultPartitioner()
    generator = random.Random(7)
    for _ in range(500):
        key = generator.randbytes(generator.randint(1, 40))
        partitions = generator.choice([1, 3, 6, 12])
        everything = list(range(partitions))
        assert partition_index(key, partitions) == partitioner(key, everything, everything)


def test_placements_match_the_java_clients_murmur2() -> None:
    # Vectors of Kafka's own UtilsTest.testMurmur2: Utils.murmur2(key) as a signed Java int;
    # the Java partitioner places a key at toPositive(murmur2(key)) % partitions.
    java = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, murmur in java.items():
        for partitions in (1, 3, 6, 7):
            assert partition_index(key, partitions) == (murmur & 0x7FFFFFFF) % partitions, key
